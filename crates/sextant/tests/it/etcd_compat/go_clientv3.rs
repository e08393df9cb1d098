//! The article's service registration in Go (`go/main.go`, on the official
//! clientv3 as Debian ships it) against `sextant agent --dev`: it is built
//! with `GO111MODULE=off GOPATH=/usr/share/gocode`, runs unchanged, its key is
//! visible to another client by prefix while it renews the lease, and the key
//! disappears about 10 s after it stops renewing.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use etcd_client::{Client, GetOptions, LeaseTimeToLiveOptions};
use testkit::compat::{Report, Suite};
use testkit::Server;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::{scratch_dir, wait_leader, BIN};

pub const SUITE: Suite = Suite {
    id: "go-clientv3",
    client: "Go clientv3",
    scope: "the article's registration unchanged: lease of 10 s, put with it, get by prefix, \
            keep-alive; another client sees the key; it is gone about 10 s after renewals stop",
};

const GOPATH: &str = "/usr/share/gocode";
const KEY: &str = "/services/user-service/127.0.0.1:8080";
const PREFIX: &str = "/services/user-service/";
const LEASE_TTL: Duration = Duration::from_secs(10);
const BUILD_TIMEOUT: Duration = Duration::from_secs(300);
/// How long one line of the program's output may take.
const LINE_TIMEOUT: Duration = Duration::from_secs(20);
/// Expiry is measured from the last keep-alive answer the program printed:
/// the lease runs out TTL after the renewal that answer confirms.
const EXPIRY_EARLIEST: Duration = Duration::from_millis(9_000);
const EXPIRY_LATEST: Duration = Duration::from_millis(12_500);

pub async fn run() -> Report {
    let mut report = Report::new(SUITE);
    if let Err(err) = run_all(&mut report).await {
        report.aborted(&err);
    }
    report
}

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/etcd_compat/go")
}

/// `go build` of the program; returns the binary.
async fn build() -> anyhow::Result<PathBuf> {
    let out_dir = scratch_dir("etcd-compat-go");
    std::fs::create_dir_all(&out_dir)?;
    let binary = out_dir.join("clientv3-register");
    let mut command = Command::new("go");
    command
        .arg("build")
        .arg("-o")
        .arg(&binary)
        .arg(".")
        .current_dir(source_dir())
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOFLAGS", "")
        .kill_on_drop(true);
    if std::env::var_os("GOCACHE").is_none() {
        // A cache of its own under target/ so the build needs no $HOME.
        command.env("GOCACHE", scratch_dir("go-build-cache"));
    }
    let started = Instant::now();
    let output = tokio::time::timeout(BUILD_TIMEOUT, command.output())
        .await
        .context("go build timed out")?
        .context("cannot run `go` (Debian package golang-go)")?;
    println!("[go-clientv3] go build took {:?}", started.elapsed());
    if !output.status.success() {
        bail!(
            "go build failed ({:?}): {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(binary)
}

/// The program's stdout, one line at a time, each with when it arrived.
struct Lines {
    rx: mpsc::Receiver<(Instant, String)>,
}

impl Lines {
    fn follow(child: &mut Child) -> anyhow::Result<Lines> {
        let stdout = child.stdout.take().context("stdout is piped")?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                println!("[go-clientv3] program: {line}");
                if tx.send((Instant::now(), line)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Lines { rx })
    }

    /// The next line, or an error when the program printed `error ...`,
    /// closed its output or stayed silent for too long.
    async fn next(&mut self) -> anyhow::Result<(Instant, String)> {
        let (at, line) = tokio::time::timeout(LINE_TIMEOUT, self.rx.recv())
            .await
            .map_err(|_| anyhow!("no output for {LINE_TIMEOUT:?}"))?
            .ok_or_else(|| anyhow!("the program closed its output"))?;
        if line.starts_with("error ") {
            bail!("the program failed: {line}");
        }
        Ok((at, line))
    }

    async fn expect(&mut self, prefix: &str) -> anyhow::Result<(Instant, String)> {
        let (at, line) = self.next().await?;
        if !line.starts_with(prefix) {
            bail!("expected a line starting with {prefix:?}, got {line:?}");
        }
        Ok((at, line))
    }
}

async fn key_lease(client: &mut Client) -> anyhow::Result<Option<i64>> {
    let got = client
        .get(PREFIX, Some(GetOptions::new().with_prefix()))
        .await?;
    Ok(got
        .kvs()
        .iter()
        .find(|kv| kv.key() == KEY.as_bytes())
        .map(|kv| kv.lease()))
}

async fn run_all(report: &mut Report) -> anyhow::Result<()> {
    let binary = build().await;
    let binary = report.step(
        "builds with Debian's golang-go and golang-etcd-server-dev (GO111MODULE=off)",
        binary,
    )?;

    let dev = Server::start_dev(BIN).await;
    wait_leader(&dev).await;
    let endpoint = dev.grpc_addr().to_string();
    let mut client = Client::connect([endpoint.as_str()], None).await?;

    let mut child = Command::new(&binary)
        .arg("-endpoint")
        .arg(&endpoint)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the Go program")?;
    let mut lines = Lines::follow(&mut child)?;

    let (_, line) = lines.expect("client ").await?;
    if let Some(version) = line.rsplit(' ').next() {
        report.version = version.to_owned();
    }
    let granted = lines.expect("granted ").await;
    let (granted_at, line) = report.step("grants a lease", granted)?;
    let ttl_ok = if line.ends_with(" ttl 10") {
        Ok(())
    } else {
        Err(format!("expected TTL 10: {line:?}"))
    };
    report.step("the lease has the TTL asked for (10 s)", ttl_ok)?;
    let put = lines.expect(&format!("put {KEY} ")).await;
    report.step("puts the instance's key with the lease", put)?;
    let found = lines
        .expect(&format!("found {KEY} = 127.0.0.1:8080 "))
        .await;
    report.step("gets the service by prefix", found)?;
    let mut last_renewal = lines.expect("keepalive ttl 10").await?.0;

    let seen = key_lease(&mut client).await.and_then(|lease| match lease {
        Some(lease) if lease != 0 => Ok(lease),
        other => Err(anyhow!("{KEY} by prefix: lease {other:?}")),
    });
    let lease = report.step(
        "etcd-client sees the key by prefix, attached to a lease",
        seen,
    )?;

    // Renewals must carry the lease past its TTL: watch the key for a whole
    // TTL and more while the program keeps it alive.
    let hold = async {
        while granted_at.elapsed() < LEASE_TTL + Duration::from_secs(2) {
            tokio::select! {
                line = lines.next() => {
                    let (at, line) = line?;
                    if line.starts_with("keepalive ttl ") {
                        last_renewal = at;
                    }
                }
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            if key_lease(&mut client).await? != Some(lease) {
                bail!(
                    "the key vanished {:?} after the grant",
                    granted_at.elapsed()
                );
            }
        }
        let left = client
            .lease_time_to_live(lease, Some(LeaseTimeToLiveOptions::new().with_keys()))
            .await?;
        if left.ttl() <= 0 || left.keys() != [KEY.as_bytes().to_vec()] {
            bail!("TimeToLive: TTL {} keys {:?}", left.ttl(), left.keys());
        }
        Ok(())
    };
    let held = hold.await;
    report.step("keep-alives hold the key past the lease's TTL", held)?;

    // Stop the program: it stops renewing and exits without revoking.
    drop(child.stdin.take());
    let stopped_at = loop {
        let (at, line) = lines.next().await?;
        if line.starts_with("keepalive ttl ") {
            last_renewal = at;
        } else if line.starts_with("stopped ") {
            break at;
        }
    };
    let status = tokio::time::timeout(LINE_TIMEOUT, child.wait()).await??;
    let exited = if status.success() {
        Ok(())
    } else {
        Err(format!("exit status {status}"))
    };
    report.step("the program stops when told to (stdin closed)", exited)?;

    // Still there shortly after the stop: the last renewal was at most a
    // third of the TTL before it.
    let shortly = async {
        while stopped_at.elapsed() < Duration::from_secs(2) {
            if key_lease(&mut client).await?.is_none() {
                bail!("gone {:?} after the stop", stopped_at.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    };
    let shortly = shortly.await;
    report.step("the key is still there 2 s after renewals stop", shortly)?;

    let gone = async {
        loop {
            let since = last_renewal.elapsed();
            if key_lease(&mut client).await?.is_none() {
                return Ok(since);
            }
            if since > EXPIRY_LATEST {
                bail!("still there {since:?} after the last renewal");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    };
    let gone = gone.await.and_then(|since: Duration| {
        println!("[go-clientv3] key gone {since:?} after the last renewal");
        if since < EXPIRY_EARLIEST {
            bail!("gone already {since:?} after the last renewal (TTL {LEASE_TTL:?})")
        }
        Ok(())
    });
    report.step("the key disappears about 10 s after the last renewal", gone)?;
    Ok(())
}
