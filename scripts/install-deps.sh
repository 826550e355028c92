#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, only when one is missing, so a warm
# machine does not touch apt at all. Needs root (CI and dev machines of this project run as root).
set -euo pipefail

# debootstrap: cached Debian roots for agent tests; dpkg-dev + apt-utils: local apt repositories
# (dpkg-scanpackages, apt-ftparchive); rpm + python3-rpm: rpm version oracle; createrepo-c, dnf,
# zypper: rpm-md fixtures; openssl/curl/jq: control plane scripts; python3-yaml: the chart README
# generator (scripts/chart-readme.py); lua5.4: the Argo CD health checks (tests/gitops_health.rs).
# musl-tools, gcc-aarch64-linux-gnu (+ its libc headers): the image's static binaries for x86_64
# and aarch64; qemu-user-static runs the aarch64 one in tests/static_binary.rs.
PACKAGES=(debootstrap dpkg-dev apt-utils python3-apt python3-yaml rpm python3-rpm createrepo-c dnf zypper openssl curl jq musl-tools file lua5.4 prometheus
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static)

# The static (musl) binaries of the container image are built and tested by `make test`.
if command -v rustup >/dev/null; then
  for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    if ! rustup target list --installed | grep -qx "$target"; then
      echo "install-deps.sh: adding the rust target $target"
      rustup target add "$target"
    fi
  done
fi

# The fuzz step of `make test` (scripts/fuzz.sh): the nightly toolchain and cargo-fuzz, built
# once into ~/.cargo/bin.
if command -v rustup >/dev/null; then
  if ! rustup toolchain list | grep -q '^nightly'; then
    echo "install-deps.sh: adding the nightly toolchain (fuzzing)"
    rustup toolchain install nightly --profile minimal
  fi
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "install-deps.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
  fi
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps.sh: all Debian packages present"
  exit 0
fi
echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
