#!/usr/bin/env bash
# Builds the static (musl) nodepatch binary the container image ships (Containerfile), and prints
# its path. tests/static_binary.rs checks that binary: statically linked, runs, prints the CRDs.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
export CC_x86_64_unknown_linux_musl=${CC_x86_64_unknown_linux_musl:-musl-gcc}
cargo build --quiet --release --locked --target "$target" --bin nodepatch
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
echo "$target_dir/$target/release/nodepatch"
