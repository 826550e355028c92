#!/usr/bin/env bash
# Builds the pinned control-plane tools from the Go module proxy into .local/bin.
#
# Each tool is built from a wrapper module of ours (e2e/tools/<group>/go.mod + go.sum), so the
# versions are pinned and verified by go.sum. Built binaries are kept in a machine-wide cache
# ($NODEPATCH_CACHE, default ~/.cache/nodepatch) under a stamp (hash of the wrapper's go.mod/go.sum,
# the Go version and this script's build flags) and linked into .local/bin. A binary is built only
# when no cached one has its stamp, so a fresh clone on a warm machine builds nothing and a pin
# bump rebuilds exactly what moved.
#
# Usage: e2e/tools/build.sh [tool ...]    (default: every tool)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin="$root/.local/bin"
cache="${NODEPATCH_CACHE:-$HOME/.cache/nodepatch}/tools"
mkdir -p "$bin" "$cache"

export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0
K8S_VERSION=v1.37.2

# tool -> "group|package|ldflags|tags"
declare -A TOOLS=(
  [etcd]="etcd|go.etcd.io/etcd/server/v3||"
  [kube-apiserver]="k8s|k8s.io/kubernetes/cmd/kube-apiserver|K8S|selinux,notest,grpcnotrace"
  [kube-controller-manager]="k8s|k8s.io/kubernetes/cmd/kube-controller-manager|K8S|selinux,notest,grpcnotrace"
  [kube-scheduler]="k8s|k8s.io/kubernetes/cmd/kube-scheduler|K8S|selinux,notest,grpcnotrace"
  [kubectl]="k8s|k8s.io/kubernetes/cmd/kubectl|K8S|selinux,notest,grpcnotrace"
  [kwok]="kwok|sigs.k8s.io/kwok/cmd/kwok|-X sigs.k8s.io/kwok/pkg/consts.Version=v0.8.0|"
  [helm]="helm|helm.sh/helm/v3/cmd/helm|-X helm.sh/helm/v3/internal/version.version=v3.22.0|"
  # Our own small program (main.go in the wrapper) over the kstatus library (tests/gitops_health.rs).
  [kstatus]="kstatus|nodepatch.dev/e2e/tools/kstatus||"
)
ORDER=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm kstatus)

k8s_ldflags() {
  local major minor
  major=${K8S_VERSION#v}; major=${major%%.*}
  minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
  local p=k8s.io/component-base/version
  local c=k8s.io/client-go/pkg/version
  echo "-s -w -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor" \
    "-X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z" \
    "-X $c.gitVersion=$K8S_VERSION -X $c.gitMajor=$major -X $c.gitMinor=$minor"
}

stamp_of() {
  local tool=$1 group spec
  spec=${TOOLS[$tool]}
  group=${spec%%|*}
  # A wrapper with its own Go source (kstatus) is stamped by that source too.
  { cat "$here/$group/go.mod" "$here/$group/go.sum" $(compgen -G "$here/$group/*.go" || true); go version; echo "$spec"; echo "$K8S_VERSION"; } |
    sha256sum | cut -c1-16
}

build_tool() {
  local tool=$1 spec group pkg ldflags tags stamp
  spec=${TOOLS[$tool]}
  IFS='|' read -r group pkg ldflags tags <<<"$spec"
  stamp=$(stamp_of "$tool")
  local cached="$cache/$tool-$stamp"
  if [[ -x "$cached" ]]; then
    ln -sfn "$cached" "$bin/$tool"
    echo "build.sh: $tool up to date ($stamp)"
    return 0
  fi
  [[ $ldflags == K8S ]] && ldflags=$(k8s_ldflags) || ldflags="-s -w $ldflags"
  echo "build.sh: building $tool from $pkg (stamp $stamp)"
  local start=$SECONDS
  (cd "$here/$group" && go build -trimpath ${tags:+-tags=$tags} -ldflags="$ldflags" -o "$cached.tmp" "$pkg")
  mv "$cached.tmp" "$cached"
  ln -sfn "$cached" "$bin/$tool"
  echo "build.sh: built $tool in $((SECONDS - start))s"
}

tools=("$@")
[[ ${#tools[@]} -eq 0 ]] && tools=("${ORDER[@]}")
for t in "${tools[@]}"; do
  [[ -n ${TOOLS[$t]:-} ]] || { echo "build.sh: unknown tool $t (known: ${ORDER[*]})" >&2; exit 2; }
  build_tool "$t"
done
