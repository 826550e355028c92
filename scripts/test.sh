#!/usr/bin/env bash
# The whole test suite, as CI runs it (`make test`): lint, then every cargo test against a
# real local control plane. A cluster this script started is stopped at the end; one that was
# already running (make cluster-up) is reused and left running.
set -euo pipefail
cd "$(dirname "$0")/.."

started=""
if ! e2e/cluster.sh status >/dev/null 2>&1; then
  e2e/cluster.sh up
  started=yes
fi
cleanup() { [[ -z $started ]] || e2e/cluster.sh down; }
trap cleanup EXIT

export NODEPATCH_KUBECONFIG="$PWD/.local/kubeconfig"
# CI runs in a fresh clone each time: share one cargo target directory per machine so
# dependencies are not recompiled on every run (a developer's own target/ is left alone).
if [[ ${CI:-} == true && -z ${CARGO_TARGET_DIR:-} ]]; then
  export CARGO_TARGET_DIR="${NODEPATCH_CACHE:-$HOME/.cache/nodepatch}/target"
fi
# The container image's static binaries (x86_64 and aarch64), checked by tests/static_binary.rs.
while read -r arch bin; do
  case $arch in
    amd64) export NODEPATCH_STATIC_BIN=$bin ;;
    arm64) export NODEPATCH_STATIC_BIN_AARCH64=$bin ;;
  esac
done < <(scripts/build-static.sh)
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
# Every fuzz target for a bounded time (FUZZ_SECONDS each); a crash fails the suite.
scripts/fuzz.sh
