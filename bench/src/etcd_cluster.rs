//! The baseline: real etcd members (Debian's `etcd-server`, 3.4) on loopback,
//! started and killed the way testkit does it for Sextant, with etcd's
//! default durability (every write fsync'd by a majority).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use sextant_proto::etcd::etcdserverpb::maintenance_client::MaintenanceClient;
use sextant_proto::etcd::etcdserverpb::{PutRequest, StatusRequest};
use tokio::process::{Child, Command};

/// Where Debian installs etcd.
const ETCD_BIN: &str = "/usr/bin/etcd";

struct Member {
    name: String,
    client_port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

/// A running etcd cluster of 1 or 3 members.
pub struct EtcdCluster {
    members: Vec<Member>,
    _dir: tempfile::TempDir,
}

impl EtcdCluster {
    pub async fn start(size: usize) -> anyhow::Result<Self> {
        if !Path::new(ETCD_BIN).exists() {
            crate::baseline_install::etcd_server()?;
        }
        anyhow::ensure!(
            Path::new(ETCD_BIN).exists(),
            "{ETCD_BIN} is still missing after installing etcd-server"
        );
        let dir = tempfile::tempdir()?;
        let ports: Vec<(u16, u16)> = (0..size)
            .map(|_| Ok((free_port()?, free_port()?)))
            .collect::<anyhow::Result<_>>()?;
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("e{}=http://127.0.0.1:{peer}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let name = format!("e{}", i + 1);
            let data_dir: PathBuf = dir.path().join(&name);
            let args = vec![
                format!("--name={name}"),
                format!("--data-dir={}", data_dir.display()),
                format!("--listen-client-urls=http://127.0.0.1:{client}"),
                format!("--advertise-client-urls=http://127.0.0.1:{client}"),
                format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-cluster={initial_cluster}"),
                "--initial-cluster-token=sextant-bench".into(),
                // Same election timeout as Sextant's default (1 s).
                "--heartbeat-interval=100".into(),
                "--election-timeout=1000".into(),
                "--log-level=error".into(),
            ];
            members.push(Member {
                name,
                client_port: *client,
                args,
                child: None,
            });
        }
        let mut cluster = Self { members, _dir: dir };
        for i in 0..size {
            cluster.spawn(i)?;
        }
        cluster.wait_writable().await?;
        Ok(cluster)
    }

    fn spawn(&mut self, index: usize) -> anyhow::Result<()> {
        let member = &mut self.members[index];
        let child = Command::new(ETCD_BIN)
            .args(&member.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start etcd member {}", member.name))?;
        member.child = Some(child);
        Ok(())
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client_port))
            .collect()
    }

    pub fn pids(&self) -> Vec<u32> {
        self.members
            .iter()
            .filter_map(|m| m.child.as_ref().and_then(Child::id))
            .collect()
    }

    /// Waits until a put through every member succeeds.
    pub async fn wait_writable(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        for endpoint in self.endpoints() {
            loop {
                if put_once(&endpoint).await.is_ok() {
                    break;
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "etcd at {endpoint} not writable after 30 s"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// The index of the member every live member names as leader.
    pub async fn leader_index(&self) -> anyhow::Result<usize> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(index) = self.agreed_leader().await {
                return Ok(index);
            }
            anyhow::ensure!(Instant::now() < deadline, "etcd elected no leader");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn agreed_leader(&self) -> Option<usize> {
        let mut leader_id = None;
        let mut ids = Vec::new();
        for endpoint in self.endpoints() {
            let mut client = MaintenanceClient::connect(endpoint).await.ok()?;
            let status = client.status(StatusRequest {}).await.ok()?.into_inner();
            let member_id = status.header.as_ref()?.member_id;
            ids.push(member_id);
            if *leader_id.get_or_insert(status.leader) != status.leader {
                return None;
            }
        }
        ids.iter().position(|id| Some(*id) == leader_id)
    }

    pub async fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.members[index].child.take() {
            let _ = child.kill().await;
        }
    }

    pub async fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        self.kill(index).await;
        self.spawn(index)?;
        self.wait_writable().await
    }

    pub fn member_endpoint(&self, index: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[index].client_port)
    }
}

async fn put_once(endpoint: &str) -> anyhow::Result<()> {
    let mut kv =
        sextant_proto::etcd::etcdserverpb::kv_client::KvClient::connect(endpoint.to_owned())
            .await?;
    kv.put(PutRequest {
        key: b"bench-ready".to_vec(),
        value: b"1".to_vec(),
        ..Default::default()
    })
    .await?;
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
