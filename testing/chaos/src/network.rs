//! Real network partitions: every server in its own network namespace.
//!
//! Why namespaces and not a TCP proxy between servers: a server's raft
//! address is its identity in the Raft membership, and every peer dials the
//! same address, so a proxy could not tell which peer is calling and could
//! only cut a server off from everybody. With one namespace per server, each
//! server has its own IP address on a bridge, and traffic between any two of
//! them can be cut on its own — majority/minority splits, an isolated leader,
//! a bridge node that sees both sides — with no change to the server.
//!
//! Layout: a bridge `sxchaosK` with 10.213.K.1/24 in the harness's namespace
//! (so clients reach every server, also a partitioned one, just as a client
//! on the minority side of a real partition would), and namespaces
//! `sxcK-sI` with a veth on that bridge and the address 10.213.K.(10+I). K is
//! the first bridge number free on this host, so concurrent runs don't collide.
//!
//! A cut drops packets silently, as a broken network does (connections time
//! out rather than being refused): in the receiving namespace, a routing rule
//! blackholes everything arriving from the cut-off peer. The lookup of the
//! `local` table is moved behind that rule, since it would otherwise deliver
//! the packet before the rule is consulted. This needs root and `ip`
//! (iproute2), nothing else: no iptables, no tc.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

/// Failures setting up or changing the network.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("no free bridge number: sxchaos0..sxchaos{} all exist", MAX_NETWORKS - 1)]
    NoFreeBridge,
}

const MAX_NETWORKS: u8 = 250;
/// Routing-rule priority of the cuts; the `local` table moves behind it.
const CUT_PREF: &str = "100";
const LOCAL_PREF: &str = "1000";

/// The namespaces, the bridge and the cuts currently in place. Dropping it
/// removes everything it created.
#[derive(Debug)]
pub struct Network {
    number: u8,
    servers: usize,
    /// Directed cuts (from, to): packets from `from` are dropped at `to`.
    cuts: BTreeSet<(usize, usize)>,
}

impl Network {
    /// Creates a bridge and one namespace per server.
    pub fn create(servers: usize) -> Result<Network, NetworkError> {
        let number = claim_bridge()?;
        let mut network = Network {
            number,
            servers: 0,
            cuts: BTreeSet::new(),
        };
        let bridge = network.bridge();
        ip(&["link", "set", &bridge, "up"])?;
        let gateway = format!("{}/24", network.address_of(None));
        ip(&["addr", "add", &gateway, "dev", &bridge])?;
        for server in 0..servers {
            // Counted before it is made, so a half-made namespace is deleted
            // on drop too (deleting a missing one is harmless).
            network.servers = server + 1;
            network.add_namespace(server)?;
        }
        Ok(network)
    }

    fn add_namespace(&self, server: usize) -> Result<(), NetworkError> {
        let ns = self.namespace(server);
        // A namespace left by a run that was killed has this name; reuse it clean.
        let _ = ip(&["netns", "del", &ns]);
        ip(&["netns", "add", &ns])?;
        let veth = format!("sxc{}v{server}", self.number);
        let _ = ip(&["link", "del", &veth]);
        ip(&[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ])?;
        ip(&["link", "set", &veth, "master", &self.bridge(), "up"])?;
        let address = format!("{}/24", self.server_ip(server));
        ip(&["-n", &ns, "addr", "add", &address, "dev", "eth0"])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n", &ns, "rule", "add", "pref", LOCAL_PREF, "lookup", "local",
        ])?;
        ip(&["-n", &ns, "rule", "del", "pref", "0"])?;
        Ok(())
    }

    fn bridge(&self) -> String {
        format!("sxchaos{}", self.number)
    }

    fn namespace(&self, server: usize) -> String {
        format!("sxc{}-s{server}", self.number)
    }

    fn address_of(&self, server: Option<usize>) -> Ipv4Addr {
        let host = server.map_or(1, |s| 10 + u8::try_from(s).unwrap_or(200));
        Ipv4Addr::new(10, 213, self.number, host)
    }

    /// The harness's own address on the bridge, which every server reaches.
    pub fn harness_ip(&self) -> IpAddr {
        IpAddr::V4(self.address_of(None))
    }

    /// The address server `server` listens on.
    pub fn server_ip(&self, server: usize) -> IpAddr {
        IpAddr::V4(self.address_of(Some(server)))
    }

    /// The command that runs a program inside server `server`'s namespace.
    /// `ip netns exec` execs the program in place, so its pid is the agent's.
    pub fn launcher(&self, server: usize) -> Vec<String> {
        vec![
            "ip".to_owned(),
            "netns".to_owned(),
            "exec".to_owned(),
            self.namespace(server),
        ]
    }

    /// Drops every packet from `from` to `to` (one direction).
    pub fn cut(&mut self, from: usize, to: usize) -> Result<(), NetworkError> {
        if from == to || !self.cuts.insert((from, to)) {
            return Ok(());
        }
        let source = self.address_of(Some(from)).to_string();
        let ns = self.namespace(to);
        ip(&[
            "-n",
            &ns,
            "rule",
            "add",
            "from",
            &source,
            "iif",
            "eth0",
            "blackhole",
            "pref",
            CUT_PREF,
        ])
    }

    /// Cuts both directions between every server of `a` and every server of `b`.
    pub fn split(&mut self, a: &[usize], b: &[usize]) -> Result<(), NetworkError> {
        for &x in a {
            for &y in b {
                self.cut(x, y)?;
                self.cut(y, x)?;
            }
        }
        Ok(())
    }

    /// Removes every cut.
    pub fn heal(&mut self) -> Result<(), NetworkError> {
        let cuts = std::mem::take(&mut self.cuts);
        for (from, to) in cuts {
            let source = self.address_of(Some(from)).to_string();
            let ns = self.namespace(to);
            ip(&[
                "-n",
                &ns,
                "rule",
                "del",
                "from",
                &source,
                "iif",
                "eth0",
                "blackhole",
                "pref",
                CUT_PREF,
            ])?;
        }
        Ok(())
    }

    /// The cuts in place, for the log.
    pub fn describe(&self) -> String {
        let cuts: Vec<String> = self
            .cuts
            .iter()
            .map(|(from, to)| format!("s{}->s{}", from + 1, to + 1))
            .collect();
        cuts.join(" ")
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth, and with it ours.
        for server in 0..self.servers {
            let _ = ip(&["netns", "del", &self.namespace(server)]);
        }
        let _ = ip(&["link", "del", &self.bridge()]);
    }
}

/// Creates the first bridge `sxchaosK` that does not exist yet; creating it
/// is what reserves K, so two runs never get the same one. The bridge's alias
/// names the owning process: a bridge whose owner is gone (a run killed by
/// SIGKILL cannot clean up) is removed with its namespaces and reused.
fn claim_bridge() -> Result<u8, NetworkError> {
    let owner = format!("sextant-chaos pid {}", std::process::id());
    for number in 0..MAX_NETWORKS {
        let name = format!("sxchaos{number}");
        match ip(&["link", "add", &name, "type", "bridge"]) {
            Ok(()) => {
                ip(&["link", "set", "dev", &name, "alias", &owner])?;
                return Ok(number);
            }
            Err(NetworkError::Command { stderr, .. }) if stderr.contains("exists") => {
                if owner_is_gone(&name) {
                    remove_abandoned(number);
                    if ip(&["link", "add", &name, "type", "bridge"]).is_ok() {
                        ip(&["link", "set", "dev", &name, "alias", &owner])?;
                        return Ok(number);
                    }
                }
            }
            Err(err) => return Err(err),
        }
    }
    Err(NetworkError::NoFreeBridge)
}

/// True if the bridge's alias names a process that no longer exists.
fn owner_is_gone(bridge: &str) -> bool {
    let Ok(output) = Command::new("ip")
        .args(["-o", "link", "show", bridge])
        .output()
    else {
        return false;
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let Some(pid) = text
        .split("alias sextant-chaos pid ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|pid| pid.parse::<u32>().ok())
    else {
        return false;
    };
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes what a dead run left behind under number `number`.
fn remove_abandoned(number: u8) {
    for server in 0..5 {
        let _ = ip(&["netns", "del", &format!("sxc{number}-s{server}")]);
    }
    let _ = ip(&["link", "del", &format!("sxchaos{number}")]);
}

fn ip(args: &[&str]) -> Result<(), NetworkError> {
    let command = format!("ip {}", args.join(" "));
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| NetworkError::Spawn {
            command: command.clone(),
            source,
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(NetworkError::Command {
            command,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}
