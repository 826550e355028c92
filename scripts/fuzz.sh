#!/usr/bin/env bash
# Run every fuzz target of fuzz/ for a bounded time (FUZZ_SECONDS each, default 15: seven
# targets stay under two minutes), as `make test` does after the cargo tests. A crash fails
# the script (libFuzzer exits non-zero and leaves the input in fuzz/artifacts/<target>/).
#
# Needs the nightly toolchain and cargo-fuzz (scripts/install-deps.sh installs cargo-fuzz).
# Without them the step is skipped outside CI and fails in CI (CI=true), like every test that
# needs a missing tool. The build goes to ${NODEPATCH_CACHE:-~/.cache/nodepatch}/fuzz-target
# so CI's fresh clones reuse it; the corpus stays in fuzz/corpus/<target> (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${FUZZ_SECONDS:-15}
missing=""
command -v rustup >/dev/null && rustup toolchain list | grep -q '^nightly' || missing="the nightly toolchain"
cargo fuzz --version >/dev/null 2>&1 || missing="${missing:+$missing and }cargo-fuzz"
if [[ -n $missing ]]; then
  if [[ ${CI:-} == true ]]; then
    echo "fuzz.sh: $missing missing (CI=true: failing; run scripts/install-deps.sh)" >&2
    exit 1
  fi
  echo "fuzz.sh: $missing missing, skipping the fuzz step (scripts/install-deps.sh installs it)" >&2
  exit 0
fi

target_dir="${NODEPATCH_CACHE:-$HOME/.cache/nodepatch}/fuzz-target"
mapfile -t targets < <(cargo +nightly fuzz list)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Build all targets once (one cargo invocation), then run each.
cargo +nightly fuzz build --target-dir "$target_dir" >&2
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  echo "fuzz.sh: $target for ${seconds}s" >&2
  # -rss_limit_mb: the agent's memory limit; -timeout: one input may take at most 10 s.
  status=0
  cargo +nightly fuzz run --target-dir "$target_dir" "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=512 -timeout=10 -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  grep -E '^(stat::number_of_executed_units|Done )' "$log" >&2 || true
  if ((status != 0)); then
    tail -n 40 "$log" >&2
    echo "fuzz.sh: $target failed (exit $status); the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "fuzz.sh: ${#targets[@]} targets, ${seconds}s each, no crash" >&2
