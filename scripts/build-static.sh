#!/usr/bin/env bash
# Builds the static (musl) binaries the container image ships (Containerfile), for x86_64 and
# aarch64, and prints one line per target: `<docker arch> <path>`. tests/static_binary.rs checks
# both (statically linked, the right ELF machine, runs: aarch64 under qemu-user).
#
#   scripts/build-static.sh              # both targets
#   scripts/build-static.sh amd64        # one
#   scripts/build-static.sh --dist       # also copy them to dist/<arch>/ for `podman build`
#
# x86_64 links with musl-gcc (Debian's musl-tools); aarch64 cross-links with Debian's
# gcc-aarch64-linux-gnu against the musl C library and start files Rust's
# aarch64-unknown-linux-musl target ships (self-contained), so no aarch64 musl toolchain is
# needed. scripts/install-deps.sh installs both and the rustup targets.
set -euo pipefail
cd "$(dirname "$0")/.."

dist=""
arches=()
for a in "$@"; do
  case $a in
    --dist) dist=yes ;;
    amd64 | arm64) arches+=("$a") ;;
    *) echo "build-static.sh: unknown argument $a (amd64, arm64, --dist)" >&2; exit 2 ;;
  esac
done
((${#arches[@]})) || arches=(amd64 arm64)

export CC_x86_64_unknown_linux_musl=${CC_x86_64_unknown_linux_musl:-musl-gcc}
export CC_aarch64_unknown_linux_musl=${CC_aarch64_unknown_linux_musl:-aarch64-linux-gnu-gcc}
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER:-aarch64-linux-gnu-gcc}
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
for arch in "${arches[@]}"; do
  case $arch in
    amd64) target=x86_64-unknown-linux-musl ;;
    arm64) target=aarch64-unknown-linux-musl ;;
  esac
  cargo build --quiet --release --locked --target "$target" --bin nodepatch
  bin="$target_dir/$target/release/nodepatch"
  if [[ -n $dist ]]; then
    mkdir -p "dist/$arch"
    cp "$bin" "dist/$arch/nodepatch"
    bin="$PWD/dist/$arch/nodepatch"
  fi
  echo "$arch $bin"
done
