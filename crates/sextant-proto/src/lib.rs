//! Protocol buffer definitions and the gRPC code generated from them.
//!
//! Depends on nothing of Sextant: the server and any client share these types.

/// The server-to-server API on the raft port: Raft RPCs, forwarding, cluster formation.
pub mod internal {
    tonic::include_proto!("sextant.internal.v1");
}

/// Sextant's native registry API (`sextant.v1.Registry`) on the gRPC port:
/// register, keep alive, discover and watch. The client SDK speaks it.
pub mod v1 {
    tonic::include_proto!("sextant.v1");
}

/// The etcd v3 API subset Sextant serves on its gRPC port (KV, Watch, Lease,
/// Cluster, Maintenance). The two packages are siblings because the generated
/// `etcdserverpb` code names `super::mvccpb`.
pub mod etcd {
    /// Keys and events (`mvccpb.KeyValue`, `mvccpb.Event`).
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
    /// Requests, responses and services (`etcdserverpb.*`).
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
}
