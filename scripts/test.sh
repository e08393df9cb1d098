#!/usr/bin/env bash
# Runs Sextant's whole test suite on a fresh Debian machine: installs what the
# tests need, checks formatting and lints, then runs every test.
#
#   bash scripts/test.sh            # everything
#   SKIP_LINT=1 bash scripts/test.sh  # tests only
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# Tools the tests drive. Nothing is needed beyond the Rust toolchain yet; real
# client packages (etcdctl, py-consul, dig) are added here as the suite uses them.
need_apt=()
command -v cargo-nextest >/dev/null 2>&1 || cargo nextest --version >/dev/null 2>&1 || need_nextest=1
if [ "${#need_apt[@]}" -gt 0 ]; then
  log "installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
if [ "${need_nextest:-0}" = 1 ]; then
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
