#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, only when one is missing, so a warm
# machine does not touch apt at all. Needs root (CI and dev machines of this project run as root).
set -euo pipefail

# debootstrap: cached Debian roots for agent tests; dpkg-dev + apt-utils: local apt repositories
# (dpkg-scanpackages, apt-ftparchive); rpm + python3-rpm: rpm version oracle; createrepo-c, dnf,
# zypper: rpm-md fixtures; openssl/curl/jq: control plane scripts; prometheus: promtool for the
# alert unit tests and the server the e2e scrapes the controller with (never started as a service).
PACKAGES=(debootstrap dpkg-dev apt-utils python3-apt rpm python3-rpm createrepo-c dnf zypper openssl curl jq musl-tools file prometheus)

# The static (musl) binary of the container image is built and tested by `make test`.
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
  echo "install-deps.sh: adding the rust target x86_64-unknown-linux-musl"
  rustup target add x86_64-unknown-linux-musl
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
