//! The README's "A quick tour" snippets, run as they are written: the dev
//! agent tour (register with an HTTP check, discover, watch, kill the
//! instance), the key/value store, snapshots, and the three-server cluster
//! that loses a server. A second server started with the defaults next to a
//! running one must exit naming the flag to set.
//!
//! Each snippet is taken from README.md itself (the fenced block after a
//! sentence of it) and typed into one `bash` a command at a time, as a person
//! would: the test waits for what a person would wait for (a server ready, a
//! check passing) by polling with a deadline, and checks what the README says
//! each command does. The test's own `sextant` is first on `PATH`. Each
//! command's output goes to files of its own, so that a background job's
//! output (`sextant watch … &`) can be read apart from the rest.
//!
//! The README uses fixed ports (8500, 2379, 8600, 8848, 830x, 850x, …), all
//! below the ephemeral range the other tests' servers get theirs from; the
//! snippets therefore run one after the other in this one test function.
//! Every process a snippet starts is in the process group of its shell, which
//! is ended when the test ends, also when it fails, and by the shell itself
//! if the test process dies first (its input closes).

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::{wait_for, HttpClient};

const BIN: &str = env!("CARGO_BIN_EXE_sextant");

/// How long one command of a snippet may take, and a server to get ready.
const DEADLINE: Duration = Duration::from_secs(30);

/// The dev agent's listeners (the defaults), which its snippet does not name.
const DEV_PORTS: [u16; 5] = [8300, 8500, 2379, 8600, 8848];

fn addr(port: u16) -> std::net::SocketAddr {
    (Ipv4Addr::LOCALHOST, port).into()
}

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The body of the first fenced block after the first line of `readme` that
/// contains `anchor`.
fn block_after(readme: &str, anchor: &str) -> String {
    let mut lines = readme.lines().skip_while(|line| !line.contains(anchor));
    assert!(
        lines.next().is_some(),
        "README.md has no line containing {anchor:?}"
    );
    let mut lines = lines.skip_while(|line| !line.starts_with("```"));
    assert!(
        lines.next().is_some(),
        "README.md has no fenced block after {anchor:?}"
    );
    let mut body = String::new();
    for line in lines.take_while(|line| !line.starts_with("```")) {
        body.push_str(line);
        body.push('\n');
    }
    body
}

/// Splits a snippet into its commands (a command may span lines: a trailing
/// `\`, an open quote, a loop), each with the comment and blank lines before
/// it.
fn commands(snippet: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in snippet.lines() {
        current.push_str(line);
        current.push('\n');
        let code = line.trim();
        if code.is_empty() || code.starts_with('#') || code.ends_with('\\') {
            continue;
        }
        if parses(&current) {
            commands.push(std::mem::take(&mut current));
        }
    }
    assert!(
        current.trim().is_empty(),
        "the snippet ends in an unfinished command:\n{current}"
    );
    commands
}

/// Whether `text` is complete shell syntax (`bash -n` reads without running).
fn parses(text: &str) -> bool {
    Command::new("bash")
        .args(["-n", "-c", text])
        .stderr(Stdio::null())
        .status()
        .expect("running bash -n")
        .success()
}

/// The loopback ports a snippet names (`127.0.0.1:830$i` is 8301 to 8303).
fn ports_in(snippet: &str) -> Vec<u16> {
    let mut ports = Vec::new();
    for (at, _) in snippet.match_indices("127.0.0.1:") {
        let rest = &snippet[at + "127.0.0.1:".len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            continue;
        }
        if rest[digits.len()..].starts_with("$i") {
            ports.extend((1..=3).map(|i| format!("{digits}{i}").parse::<u16>().expect("a port")));
        } else {
            ports.push(digits.parse().expect("a port"));
        }
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Waits until every one of `ports` can be bound on 127.0.0.1 (TCP, and UDP
/// too: DNS), so that a snippet never meets a server left by something else.
async fn wait_ports_free(ports: &[u16]) {
    wait_for("the README's ports to be free", DEADLINE, || async move {
        for &port in ports {
            TcpListener::bind(addr(port)).map_err(|e| format!("TCP {port}: {e}"))?;
            UdpSocket::bind(addr(port)).map_err(|e| format!("UDP {port}: {e}"))?;
        }
        Ok::<_, String>(())
    })
    .await;
}

/// One command that a [`Shell`] ran.
#[derive(Clone)]
struct Step {
    command: String,
    out: PathBuf,
    err: PathBuf,
}

impl Step {
    /// What the command (and any background job it started) printed so far.
    fn stdout(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits until the command's output contains `text`.
    async fn wait_printed(&self, text: &str, timeout: Duration) -> String {
        let what = format!("{:?} to print {text:?}", self.command.trim());
        wait_for(&what, timeout, || async move {
            let out = self.stdout();
            if out.contains(text) {
                Ok(out)
            } else {
                Err(format!("printed so far: {out:?}"))
            }
        })
        .await
    }
}

/// A `bash` fed a snippet's commands one at a time, in its own process group.
struct Shell {
    child: Child,
    stdin: Option<ChildStdin>,
    dir: tempfile::TempDir,
    pending: Vec<String>,
    steps: Vec<Step>,
    /// Paths outside `dir` that the snippet creates, removed at the end.
    leftovers: Vec<PathBuf>,
}

impl Shell {
    /// A shell for `snippet`, which leaves `leftovers` behind (removed now,
    /// if an earlier run left them, and when the shell ends).
    fn start(snippet: &str, leftovers: &[&str]) -> Shell {
        let leftovers: Vec<PathBuf> = leftovers.iter().map(PathBuf::from).collect();
        for path in &leftovers {
            let _ = fs::remove_dir_all(path);
        }
        let dir = tempfile::Builder::new()
            .prefix("sextant-readme-")
            .tempdir()
            .expect("creating a temporary directory");
        let bin_dir = dir.path().join("bin");
        fs::create_dir(&bin_dir).expect("creating bin/");
        std::os::unix::fs::symlink(BIN, bin_dir.join("sextant")).expect("linking bin/sextant");
        let path = match std::env::var_os("PATH") {
            Some(path) => {
                let mut dirs = vec![bin_dir];
                dirs.extend(std::env::split_paths(&path));
                std::env::join_paths(dirs).expect("a PATH")
            }
            None => bin_dir.into_os_string(),
        };
        let log = fs::File::create(dir.path().join("shell.log")).expect("creating shell.log");
        let mut command = Command::new("bash");
        command
            .current_dir(dir.path())
            .env("PATH", path)
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("shell.log"))
            .stderr(log)
            .process_group(0);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SEXTANT_") {
                command.env_remove(&key);
            }
        }
        let mut child = command.spawn().expect("starting bash");
        let mut stdin = child.stdin.take();
        // When its input closes (the test ended, or died), the shell ends
        // every process of its group: the snippet's background jobs.
        writeln!(
            stdin.as_mut().expect("bash's stdin"),
            "trap 'kill -TERM 0' EXIT"
        )
        .expect("writing to bash");
        let mut shell = Shell {
            child,
            stdin,
            dir,
            pending: Vec::new(),
            steps: Vec::new(),
            leftovers,
        };
        shell.append(snippet);
        shell
    }

    /// Queues another snippet, to run in the same shell after this one.
    fn append(&mut self, snippet: &str) {
        assert!(
            self.pending.is_empty(),
            "commands not run: {:?}",
            self.pending
        );
        self.pending = commands(snippet);
    }

    /// Runs the pending commands up to the first that contains `needle`,
    /// which it returns. Each must exit with 0.
    async fn run_through(&mut self, needle: &str) -> Step {
        let at = self
            .pending
            .iter()
            .position(|command| command.contains(needle))
            .unwrap_or_else(|| {
                panic!(
                    "no command of the snippet left contains {needle:?}: {:?}",
                    self.pending
                )
            });
        for command in self.pending.drain(..=at).collect::<Vec<_>>() {
            self.run(command).await;
        }
        self.steps.last().expect("a step was run").clone()
    }

    /// [`Shell::run_through`], then what the last command printed.
    async fn output(&mut self, needle: &str) -> String {
        self.run_through(needle).await.stdout()
    }

    async fn run(&mut self, command: String) {
        let n = self.steps.len();
        let file = |ext: &str| self.dir.path().join(format!("step-{n}.{ext}"));
        let (script, out, err, rc) = (file("sh"), file("out"), file("err"), file("rc"));
        fs::write(&script, &command).expect("writing the step's script");
        // Sourced, so that variables and jobs (`%1`) carry on to the next
        // command; the exit status is written last, renamed into place.
        let line = format!(
            ". '{}' >'{}' 2>'{}' </dev/null; echo $? >'{rc}.tmp'; mv '{rc}.tmp' '{rc}'\n",
            script.display(),
            out.display(),
            err.display(),
            rc = rc.display(),
        );
        let stdin = self.stdin.as_mut().expect("bash's stdin");
        stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.flush())
            .expect("writing to bash");
        self.steps.push(Step { command, out, err });
        let what = format!("`{}` to finish", self.steps[n].command.trim());
        let status = wait_for(&what, DEADLINE, || async {
            fs::read_to_string(&rc).map_err(|e| e.to_string())
        })
        .await;
        // The transcript follows, printed when the shell is dropped.
        assert_eq!(
            status.trim(),
            "0",
            "`{}` failed",
            self.steps[n].command.trim()
        );
    }

    /// Asserts that every command of the snippet was run.
    fn finish(&self) {
        assert!(
            self.pending.is_empty(),
            "commands of the snippet not run: {:?}",
            self.pending
        );
    }

    /// Every command run, with the tail of what it printed.
    fn transcript(&self) -> String {
        let tail = |path: &Path| {
            let text = fs::read_to_string(path).unwrap_or_default();
            let start = text.len().saturating_sub(3000);
            let start = (start..text.len())
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(text.len());
            text[start..].to_string()
        };
        let mut transcript = String::new();
        for step in &self.steps {
            let _ = writeln!(
                transcript,
                "$ {}\n--- stdout:\n{}--- stderr:\n{}",
                step.command.trim(),
                tail(&step.out),
                tail(&step.err)
            );
        }
        transcript
    }

    /// Whether a process of the shell's group is still running (not a zombie).
    fn group_running(&self) -> bool {
        let pgid = self.child.id().to_string();
        let Ok(entries) = fs::read_dir("/proc") else {
            return false;
        };
        entries.flatten().any(|entry| {
            let stat = fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid pgrp …; comm may hold spaces.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect())
                .unwrap_or_default();
            fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid
        })
    }

    fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("README snippet transcript:\n{}", self.transcript());
        }
        // SIGTERM first, so that a dev agent removes its temporary data
        // directory; SIGKILL whatever is left after a while.
        drop(self.stdin.take());
        self.signal_group("-TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && (matches!(self.child.try_wait(), Ok(None)) || self.group_running())
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.signal_group("-KILL");
        let _ = self.child.wait();
        for path in &self.leftovers {
            let _ = fs::remove_dir_all(path);
        }
    }
}

/// `sextant watch` output reduced to what does not change from run to run:
/// each line's words, with the time, the index and the node name replaced.
fn watch_shape(output: &str) -> Vec<String> {
    output
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut words: Vec<&str> = line.split_whitespace().collect();
            let stamp = words[0].len() == 20 && words[0].ends_with('Z');
            if stamp {
                words[0] = "<time>";
                if let Some(index) = words.iter().position(|w| *w == "(index") {
                    if index + 1 < words.len() {
                        words[index + 1] = "<n>):";
                    }
                }
            } else if words[0] != "Node" && line != "(no instances)" {
                words[0] = "<node>";
            }
            words.join(" ")
        })
        .collect()
}

async fn json(client: &HttpClient, path: &str) -> Result<Value, String> {
    client.get_json(path).await.map_err(|e| format!("{e:#}"))
}

/// The number of blocking queries parked on a server, from its metrics.
async fn blocking_queries(client: &HttpClient) -> u64 {
    let text = client.get("/metrics").await.expect("GET /metrics").text();
    text.lines()
        .find_map(|line| line.strip_prefix("sextant_blocking_queries_in_flight "))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map(|value| value as u64)
        .expect("sextant_blocking_queries_in_flight in /metrics")
}

/// The tour's user-service instances, each as `address:port` and the status
/// of each of its checks, from `/v1/health/service/user-service` (`query`
/// e.g. `?passing`).
async fn user_service(client: &HttpClient, query: &str) -> Result<Vec<String>, String> {
    let entries = json(client, &format!("/v1/health/service/user-service{query}")).await?;
    let entries = entries.as_array().cloned().unwrap_or_default();
    Ok(entries
        .iter()
        .map(|entry| {
            let service = &entry["Service"];
            let statuses: Vec<&str> = entry["Checks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|check| check["Status"].as_str())
                .collect();
            format!(
                "{}:{} {}",
                service["Address"].as_str().unwrap_or(""),
                service["Port"],
                statuses.join(",")
            )
        })
        .collect())
}

#[tokio::test]
async fn readme_snippets_do_what_they_say() {
    let readme = readme();
    let started = Instant::now();
    quick_tour(&readme).await;
    eprintln!("tour, key/value and snapshots: {:?}", started.elapsed());
    let started = Instant::now();
    three_servers(&readme).await;
    eprintln!("three servers: {:?}", started.elapsed());
}

/// The dev agent tour, then (on the same agent) the key/value and snapshot
/// snippets, and a second server on the defaults.
async fn quick_tour(readme: &str) {
    let tour = block_after(readme, "The scenario of service discovery");
    assert!(
        !tour.contains("cargo "),
        "the tour must not build: the test runs it as written"
    );
    let mut ports = ports_in(&tour);
    ports.extend(DEV_PORTS);
    ports.push(8080);
    wait_ports_free(&ports).await;

    let http = HttpClient::new(addr(8500));
    let mut shell = Shell::start(&tour, &["/tmp/user-service"]);
    shell.run_through("sextant agent --dev &").await;
    wait_for("the dev agent to elect itself", DEADLINE, || async {
        match http.status_leader().await {
            Ok(leader) if !leader.is_empty() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    shell.run_through("python3 -m http.server 8080) &").await;
    let target = HttpClient::new(addr(8080));
    wait_for("the user service to answer /health", DEADLINE, || async {
        let reply = target.get("/health").await.map_err(|e| format!("{e:#}"))?;
        match (reply.status, reply.text().as_str()) {
            (200, "ok\n") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    shell.run_through("/v1/agent/service/register").await;
    wait_for("the instance to pass its check", DEADLINE, || async {
        match user_service(&http, "?passing").await? {
            instances if instances == ["127.0.0.1:8080 passing,passing"] => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    let out = shell
        .output("/v1/health/service/user-service?passing")
        .await;
    let passing: Value = serde_json::from_str(&out).expect("JSON from ?passing");
    assert_eq!(passing[0]["Service"]["Service"], "user-service", "{out}");
    assert_eq!(passing[0]["Service"]["Port"], 8080, "{out}");

    let out = shell.output("sextant health user-service").await;
    assert!(
        out.contains("user-service") && out.contains("127.0.0.1:8080") && out.contains("passing"),
        "sextant health: {out}"
    );

    let out = shell
        .output("get --prefix /sextant/services/user-service/")
        .await;
    assert!(
        out.contains("/sextant/services/user-service/") && out.contains("8080"),
        "etcdctl get --prefix: {out}"
    );

    let watch = shell
        .run_through("sextant watch service user-service &")
        .await;
    watch
        .wait_printed("service:user-service=passing", DEADLINE)
        .await;

    shell.run_through("kill %2").await;
    let killed = Instant::now();
    watch
        .wait_printed("service:user-service=critical", DEADLINE)
        .await;
    let critical_after = killed.elapsed();
    watch.wait_printed("(no instances)", DEADLINE).await;
    let gone_after = killed.elapsed();
    eprintln!("after kill %2: critical in {critical_after:?}, deregistered in {gone_after:?}");
    assert!(
        critical_after < Duration::from_secs(5),
        "critical only after {critical_after:?}"
    );
    assert!(
        gone_after >= Duration::from_secs(10) && gone_after < Duration::from_secs(20),
        "deregistered after {gone_after:?} (DeregisterCriticalServiceAfter is 10s)"
    );
    let printed = watch.stdout();
    assert_eq!(
        watch_shape(&printed),
        watch_shape(&block_after(readme, "`sextant watch` then prints:")),
        "sextant watch printed:\n{printed}"
    );
    assert_eq!(user_service(&http, "").await, Ok(vec![]));
    shell.finish();

    second_server_names_the_flag().await;

    shell.append(&block_after(
        readme,
        "The key/value store is shared by both APIs",
    ));
    let out = shell.output("curl -X PUT --data 'v1'").await;
    assert_eq!(out.trim(), "true");
    let out = shell.output("sextant kv get").await;
    assert_eq!(out, "v1\n");
    let out = shell
        .output("etcdctl --endpoints 127.0.0.1:2379 get config/user-service/mode")
        .await;
    assert_eq!(out, "config/user-service/mode\nv1\n");
    shell.run_through("index=$(").await;
    let parked = blocking_queries(&http).await;
    let blocked = shell.run_through("wait=1m\" &").await;
    wait_for("the blocking query to be parked", DEADLINE, || async {
        match blocking_queries(&http).await {
            n if n > parked => Ok(()),
            n => Err(format!("{n} in flight, {parked} before")),
        }
    })
    .await;
    assert_eq!(blocked.stdout(), "", "did not block");
    let out = shell.output("sextant kv put").await;
    assert_eq!(out, "Success! Data written to: config/user-service/mode\n");
    // "v2" in base64.
    blocked.wait_printed(r#""Value":"djI=""#, DEADLINE).await;
    shell.finish();

    shell.append(&block_after(readme, "Back up the whole state"));
    shell.run_through("sextant snapshot save").await;
    let saved = fs::metadata(shell.dir.path().join("backup.snap")).expect("backup.snap");
    assert!(saved.len() > 0, "backup.snap is empty");
    shell.run_through("sextant snapshot restore").await;
    let entry = http
        .kv_get("config/user-service/mode", testkit::Consistency::Consistent)
        .await
        .expect("GET the key after the restore")
        .expect("the key after the restore");
    assert_eq!(entry.value.as_deref(), Some(&b"v2"[..]));
    shell.finish();
}

/// With a dev agent on the defaults, another server on the machine exits at
/// once naming the flag of the first listener it cannot have. Listeners are
/// bound in this order; those before the one expected are moved to port 0.
async fn second_server_names_the_flag() {
    let listeners = [
        ("Raft", "--raft-addr", 8300),
        ("Consul HTTP", "--http-addr", 8500),
        ("gRPC", "--grpc-addr", 2379),
        ("Nacos HTTP", "--nacos-addr", 8848),
        ("DNS", "--dns-addr", 8600),
    ];
    for (taken, (what, flag, port)) in listeners.iter().enumerate() {
        let mut command = tokio::process::Command::new(BIN);
        command.args(["agent", "--dev"]).kill_on_drop(true);
        for (_, moved, _) in &listeners[..taken] {
            command.args([*moved, "127.0.0.1:0"]);
        }
        let output = tokio::time::timeout(DEADLINE, command.output())
            .await
            .unwrap_or_else(|_| panic!("a second agent (taken: {flag}) did not exit"))
            .expect("running a second agent");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "a second agent started: {stderr}");
        let expected = format!(
            "the {what} address 127.0.0.1:{port} is already in use \
             (another server on this machine?): set {flag}"
        );
        assert!(
            stderr.contains(&expected),
            "expected {expected:?} in:\n{stderr}"
        );
    }
}

/// The leader's raft address that all of `servers` report.
async fn agreed_leader(servers: &[HttpClient]) -> Result<String, String> {
    let mut leaders = Vec::new();
    for server in servers {
        leaders.push(server.status_leader().await.map_err(|e| format!("{e:#}"))?);
    }
    match leaders.first() {
        Some(leader) if !leader.is_empty() && leaders.iter().all(|l| l == leader) => {
            Ok(leader.clone())
        }
        _ => Err(format!("leaders {leaders:?}")),
    }
}

/// The three-server cluster on one machine, then a server killed.
async fn three_servers(readme: &str) {
    let snippet = block_after(readme, "A three-server cluster on one machine");
    wait_ports_free(&ports_in(&snippet)).await;
    let servers: Vec<HttpClient> = (8501..=8503).map(|p| HttpClient::new(addr(p))).collect();

    let data_dirs = ["/tmp/sextant-s1", "/tmp/sextant-s2", "/tmp/sextant-s3"];
    let mut shell = Shell::start(&snippet, &data_dirs);
    shell.run_through("for i in 1 2 3; do").await;
    wait_for(
        "the three servers to agree on a leader",
        DEADLINE,
        || async {
            agreed_leader(&servers).await?;
            let config = servers[0]
                .raft_configuration()
                .await
                .map_err(|e| format!("{e:#}"))?;
            match config.servers.len() {
                3 => Ok(()),
                _ => Err(format!("{config:?}")),
            }
        },
    )
    .await;

    let out = shell.output("sextant operator raft list-peers").await;
    for name in ["s1", "s2", "s3"] {
        assert!(
            out.lines()
                .any(|line| line.starts_with(&format!("{name} "))),
            "list-peers without {name}:\n{out}"
        );
    }
    assert_eq!(out.matches(" leader ").count(), 1, "list-peers:\n{out}");

    shell.run_through("kill -9 %1").await;
    wait_for(
        "s2 and s3 to have a leader other than s1",
        DEADLINE,
        || async {
            match agreed_leader(&servers[1..]).await? {
                leader if leader == "127.0.0.1:8301" => Err("still s1".to_owned()),
                _ => Ok(()),
            }
        },
    )
    .await;

    let out = shell.output("sextant kv put still/writable yes").await;
    assert_eq!(out, "Success! Data written to: still/writable\n");
    let entry = servers[2]
        .kv_get("still/writable", testkit::Consistency::Consistent)
        .await
        .expect("GET still/writable from s3")
        .expect("still/writable on s3");
    assert_eq!(entry.value.as_deref(), Some(&b"yes"[..]));

    wait_for("s2 to see s1 failed", DEADLINE, || async {
        let members = servers[1].members().await.map_err(|e| format!("{e:#}"))?;
        match members.iter().find(|m| m.name == "s1") {
            Some(s1) if s1.status != 1 => Ok(()),
            _ => Err(format!("{members:?}")),
        }
    })
    .await;
    let out = shell.output("sextant members").await;
    let status = |name: &str| {
        out.lines()
            .find(|line| line.starts_with(&format!("{name} ")))
            .and_then(|line| line.split_whitespace().last())
            .map(str::to_owned)
    };
    assert_eq!(status("s1").as_deref(), Some("failed"), "members:\n{out}");
    assert_eq!(status("s2").as_deref(), Some("alive"), "members:\n{out}");
    assert_eq!(status("s3").as_deref(), Some("alive"), "members:\n{out}");
    shell.finish();
}
