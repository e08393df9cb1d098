#!/usr/bin/env bash
# Runs Sextant's whole test suite on a fresh Debian machine: installs the real
# clients the compatibility tests drive, checks formatting and lints, then runs
# every unit, property, cluster and compatibility test.
#
#   bash scripts/test.sh              # everything
#   SKIP_LINT=1 bash scripts/test.sh  # tests only
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# Debian packages: etcdctl (etcd-client), dig (bind9-dnsutils), and protoc
# (protobuf-compiler) for the build of the etcd-client crate the etcd API tests use;
# Go with the etcd 3.4 clientv3 sources (golang-go, golang-etcd-server-dev) and the
# Python etcd3 client for /usr/bin/python3 (python3-etcd3) for tests/etcd_compat;
# the browser the web UI test drives (chromium) for tests/it/ui.rs.
apt_packages=(etcd-client bind9-dnsutils protobuf-compiler golang-go golang-etcd-server-dev python3-etcd3 chromium)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# PyPI: the Python Consul client the Consul-compatibility tests drive, and
# the Nacos v1 client tests/it/nacos.rs drives.
if ! python3 -c 'import consul, requests, nacos' 2>/dev/null; then
  log "installing py-consul and nacos-sdk-python"
  python3 -m pip install -q --root-user-action=ignore py-consul==1.8.0 requests nacos-sdk-python==1.0.0
fi

# PyPI: Playwright, which drives the system chromium in tests/it/ui.rs (no
# `playwright install`: it never downloads a browser of its own).
if ! python3 -c 'import playwright.sync_api' 2>/dev/null; then
  log "installing playwright"
  python3 -m pip install -q --root-user-action=ignore playwright==1.65.2
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

if [ "${SKIP_LINT:-0}" != 1 ]; then
  log "cargo fmt --check"
  cargo fmt --all -- --check
  log "cargo clippy -D warnings"
  cargo clippy --workspace --all-targets --locked -- -D warnings
fi

log "cargo nextest run"
cargo nextest run --workspace --locked --no-fail-fast --profile ci
