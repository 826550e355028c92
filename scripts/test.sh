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
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
