//! Protocol buffer definitions and the gRPC code generated from them.
//!
//! Depends on nothing of Sextant: the server and any client share these types.

/// The server-to-server API on the raft port: Raft RPCs, forwarding, cluster formation.
pub mod internal {
    tonic::include_proto!("sextant.internal.v1");
}
