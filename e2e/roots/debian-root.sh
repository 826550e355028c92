#!/usr/bin/env bash
# Builds (once) a cached `debootstrap --variant=minbase bookworm` root as a tarball that agent
# tests extract per test:
#
#   e2e/roots/debian-root.sh            print the tarball path, building it when missing
#   e2e/roots/debian-root.sh --rebuild  build it again
#
# The mirror is the Debian mirror this machine's apt already uses (/etc/apt/sources.list and
# sources.list.d, one-line or deb822), so nothing else needs to be reachable. Override with
# DEBIAN_MIRROR=... . The cache is .local/cache/roots/bookworm-minbase.tar (override the
# directory with NODEPATCH_ROOTS_CACHE). Concurrent callers serialise on a lock file, so parallel
# test binaries build it only once. With CI=true the cache is ${NODEPATCH_CACHE:-~/.cache/nodepatch}/roots.
# Needs root and debootstrap (scripts/install-deps.sh).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# CI runs in a fresh clone each time: keep the cache per machine there, like the cargo target
# directory (scripts/test.sh), so debootstrap runs once per machine, not once per run.
if [[ -n ${NODEPATCH_ROOTS_CACHE:-} ]]; then
  cache=$NODEPATCH_ROOTS_CACHE
elif [[ ${CI:-} == true ]]; then
  cache=${NODEPATCH_CACHE:-${HOME:-/root}/.cache/nodepatch}/roots
else
  cache=$repo/.local/cache/roots
fi
suite=bookworm
tarball="$cache/$suite-minbase.tar"

log() { echo "debian-root.sh: $*" >&2; }

# First Debian archive URI (not debian-security) in the machine's apt sources.
machine_mirror() {
  local f uri
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) { print $i; exit } }' "$f" |
      grep -v -- '-security' | grep '/debian/\?$' | head -n 1 || true)
    [[ -n $uri ]] && { echo "$uri"; return 0; }
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    uri=$(awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f" |
      grep -v -- '-security' | grep '/debian/\?$' | head -n 1 || true)
    [[ -n $uri ]] && { echo "$uri"; return 0; }
  done
  return 1
}

build() {
  command -v debootstrap >/dev/null || { log "debootstrap missing: run scripts/install-deps.sh"; exit 2; }
  [[ $(id -u) == 0 ]] || { log "needs root (debootstrap, device nodes)"; exit 2; }
  local mirror=${DEBIAN_MIRROR:-}
  [[ -n $mirror ]] || mirror=$(machine_mirror) || { log "no Debian mirror in /etc/apt sources; set DEBIAN_MIRROR"; exit 2; }
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/build.XXXXXX")
  trap 'rm -rf "${work:-}"' EXIT
  log "debootstrap --variant=minbase $suite from $mirror (about 30-60 s)"
  debootstrap --variant=minbase "$suite" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    exit 1
  }
  # Downloaded .debs are not needed by tests and double the size.
  rm -f "$work/root/var/cache/apt/archives/"*.deb
  tar -C "$work/root" --numeric-owner -cf "$work/root.tar" .
  mv "$work/root.tar" "$tarball"
  log "built $tarball ($(du -h "$tarball" | cut -f1))"
}

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [[ ${1:-} == --rebuild ]]; then
  rm -f "$tarball"
fi
[[ -s $tarball ]] || build
echo "$tarball"
