//! Installs a missing baseline, so `compare etcd` and `compare rnacos` run
//! on a fresh machine with one command each: etcd from Debian's archive,
//! r-nacos from crates.io (a release build of it: minutes on two cores).

use std::process::Command;

use anyhow::Context;

/// The r-nacos release the README's figures were measured against.
pub const RNACOS_VERSION: &str = "0.8.8";

/// `apt-get install etcd-server` (as root, which these machines run as).
pub fn etcd_server() -> anyhow::Result<()> {
    eprintln!("etcd is not installed: installing Debian's etcd-server (apt-get)");
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "etcd-server"])
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .context("could not install etcd-server; install it by hand: apt-get install etcd-server")
}

/// `cargo install rnacos` at [`RNACOS_VERSION`], into `~/.cargo/bin`.
pub fn rnacos() -> anyhow::Result<()> {
    eprintln!(
        "r-nacos is not installed: building rnacos {RNACOS_VERSION} with cargo install \
         (several minutes; its progress follows)"
    );
    run(Command::new("cargo").args(["install", "--locked", "rnacos", "--version", RNACOS_VERSION]))
        .context("could not install r-nacos; install it by hand (cargo install rnacos --locked) or pass --rnacos-bin")
}

/// Runs `command` with its output shown, failing unless it succeeds.
fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("could not run {command:?}"))?;
    anyhow::ensure!(status.success(), "{command:?} failed: {status}");
    Ok(())
}
