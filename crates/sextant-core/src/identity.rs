//! What makes a server the same server across restarts: its node id and the
//! addresses it advertised.
//!
//! A listener configured with port 0 picks an ephemeral port on first start and
//! keeps it on every later start with the same data directory, because the
//! other servers know this one by its raft address.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::node::NodeId;

const NODE_ID_FILE: &str = "node-id";
pub const ADDRESSES_FILE: &str = "addresses.json";

/// The addresses a running server listens on, written to `addresses.json`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Advertised {
    pub name: String,
    pub node_id: NodeId,
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    pub raft: SocketAddr,
    pub dns: SocketAddr,
    /// Absent in the files of versions without the Nacos API.
    #[serde(default)]
    pub nacos: Option<SocketAddr>,
}

/// Reads this server's node id, choosing a random one on first start.
pub fn node_id(data_dir: &Path) -> io::Result<NodeId> {
    let path = data_dir.join(NODE_ID_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Zero is reserved: etcd clients treat member id 0 as "none".
            let id = rand::random::<u64>().max(1);
            sextant_storage::atomic_file::replace(
                data_dir,
                NODE_ID_FILE,
                id.to_string().as_bytes(),
            )?;
            Ok(id)
        }
        Err(e) => Err(e),
    }
}

/// The addresses this server advertised last time, if it ran before.
pub fn previous(data_dir: &Path) -> Option<Advertised> {
    let text = fs::read(data_dir.join(ADDRESSES_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// The address to bind: the configured one, unless it asks for any port and a
/// previous run already chose one on the same IP.
pub fn sticky(configured: SocketAddr, previous: Option<SocketAddr>) -> SocketAddr {
    match previous {
        Some(prev) if configured.port() == 0 && prev.ip() == configured.ip() => prev,
        _ => configured,
    }
}

pub fn write_advertised(data_dir: &Path, advertised: &Advertised) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(advertised).map_err(io::Error::other)?;
    sextant_storage::atomic_file::replace(data_dir, ADDRESSES_FILE, &json)
}
