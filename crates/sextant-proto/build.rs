//! Generates the gRPC code with a vendored protoc, so building needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    tonic_prost_build::configure().compile_protos(
        &[
            "proto/raft.proto",
            "proto/etcd/rpc.proto",
            "proto/sextant/v1/registry.proto",
        ],
        &["proto"],
    )?;
    Ok(())
}
