#!/usr/bin/env bash
# Local Kubernetes control plane for tests and the demo: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and kwok (fake nodes), all on 127.0.0.1.
#
#   e2e/cluster.sh up      start (idempotent: a healthy running cluster is reused)
#   e2e/cluster.sh down    stop every process by PID and delete the cluster's state
#   e2e/cluster.sh status  exit 0 when the apiserver answers /readyz
#   e2e/cluster.sh stop NAME / start NAME
#                          stop one component (etcd, kube-apiserver) by PID, or start it again
#                          with the same ports, data and flags (fault tests); start passes
#                          $APISERVER_EXTRA_ARGS (split on spaces) to kube-apiserver
#
# State lives in .local/cluster (certificates, tokens, etcd data, pids, ports), logs in
# .local/log, the admin kubeconfig in .local/kubeconfig. Ports are picked free at start.
# NODES (default 3) fake nodes are created: Debian 12, Ubuntu 24.04, Rocky 9, then repeating,
# alternating between zones zone-a and zone-b.
# The apiserver writes an audit log (.local/log/audit.log) of the writes made by the
# nodepatch-controller ServiceAccount only, with each token's credential ID, so a test can
# tell two controller processes' writes apart (leader fencing).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin="$root/.local/bin"
state="$root/.local/cluster"
logs="$root/.local/log"
kubeconfig="$root/.local/kubeconfig"
NODES=${NODES:-3}
K8S_VERSION=v1.37.2

log() { echo "cluster.sh: $*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

pid_alive() { [[ -f "$state/$1.pid" ]] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }

readyz() {
  [[ -f "$state/env" ]] || return 1
  # shellcheck disable=SC1091
  source "$state/env"
  curl -fsS --max-time 2 --cacert "$state/pki/ca.crt" -H "Authorization: Bearer $ADMIN_TOKEN" \
    "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null 2>&1
}

wait_for() { # name, seconds, command...
  local name=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    if ((SECONDS > deadline)); then
      log "timed out after ${secs}s waiting for $name; last log lines:"
      tail -n 30 "$logs/$name.log" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.3
  done
}

start_bg() { # name, argv...
  local name=$1; shift
  "$@" >"$logs/$name.log" 2>&1 &
  echo $! >"$state/$name.pid"
}

gen_pki() {
  local pki="$state/pki"
  mkdir -p "$pki"
  [[ -f "$pki/ca.crt" ]] && return 0
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=nodepatch-local-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:127.0.0.1,IP:10.0.0.1\n' >"$pki/san.ext"
  openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -extfile "$pki/san.ext" -out "$pki/apiserver.crt" 2>/dev/null
  # Service-account token signing key pair (TokenRequest needs the private half).
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}

write_kubeconfig() { # file, user, token
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $state/pki/ca.crt
users:
- name: $2
  user:
    token: $3
contexts:
- name: local
  context: {cluster: local, user: $2}
current-context: local
EOF
  chmod 600 "$1"
}

node_manifest() { # index -> YAML of one fake node
  local i=$1 name os_image kernel os_id version zone
  case $((i % 3)) in
    0) os_id=debian; version=12; os_image="Debian GNU/Linux 12 (bookworm)"; kernel="6.1.0-28-amd64" ;;
    1) os_id=ubuntu; version=24.04; os_image="Ubuntu 24.04.1 LTS"; kernel="6.8.0-49-generic" ;;
    2) os_id=rocky; version=9; os_image="Rocky Linux 9.4 (Blue Onyx)"; kernel="5.14.0-427.13.1.el9_4.x86_64" ;;
  esac
  if ((i % 2 == 0)); then zone=zone-a; else zone=zone-b; fi
  name="node-$((i + 1))-$os_id"
  cat <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations:
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/hostname: $name
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    topology.kubernetes.io/zone: $zone
    type: kwok
    nodepatch.dev/test-os: $os_id-$version
status:
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  nodeInfo:
    architecture: amd64
    bootID: $(cat /proc/sys/kernel/random/uuid)
    containerRuntimeVersion: containerd://2.0.0
    kernelVersion: $kernel
    kubeProxyVersion: ""
    kubeletVersion: $K8S_VERSION
    machineID: $(cat /proc/sys/kernel/random/uuid | tr -d -)
    operatingSystem: linux
    osImage: $os_image
    systemUUID: $(cat /proc/sys/kernel/random/uuid)
---
EOF
}

start_etcd() {
  start_bg etcd "$bin/etcd" --name local --data-dir "$state/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "local=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --quota-backend-bytes=4294967296 --log-level=warn
  wait_for etcd 30 curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$ETCD_PORT/health"
}

start_apiserver() {
  cat >"$state/audit-policy.yaml" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  users: ["system:serviceaccount:nodepatch-system:nodepatch-controller"]
  verbs: [create, update, patch, delete, deletecollection]
- level: None
EOF
  local extra=()
  # Word splitting is the point: flags of a fault test, e.g. "--watch-cache=false".
  # shellcheck disable=SC2206
  [[ -z ${APISERVER_EXTRA_ARGS:-} ]] || extra=($APISERVER_EXTRA_ARGS)
  start_bg kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
    --tls-cert-file "$state/pki/apiserver.crt" --tls-private-key-file "$state/pki/apiserver.key" \
    --client-ca-file "$state/pki/ca.crt" \
    --token-auth-file "$state/tokens.csv" \
    --authorization-mode Node,RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$state/pki/sa.pub" \
    --service-account-signing-key-file "$state/pki/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 \
    --endpoint-reconciler-type none \
    --allow-privileged=true \
    --profiling=false \
    --audit-policy-file "$state/audit-policy.yaml" --audit-log-path "$logs/audit.log" \
    --audit-log-maxsize 100 --audit-log-maxbackup 1 \
    "${extra[@]}" \
    --v=1
  wait_for kube-apiserver 90 readyz
}

stop_one() { # name: stop one component by PID, keep its data
  local pid deadline=$((SECONDS + 15))
  [[ -f "$state/$1.pid" ]] || { log "$1 is not running"; return 0; }
  pid=$(cat "$state/$1.pid")
  kill "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$state/$1.pid"
}

start_one() { # name: start a stopped component again with the cluster's ports and data
  [[ -f "$state/env" ]] || { log "no cluster state: run up first"; exit 1; }
  # shellcheck disable=SC1091
  source "$state/env"
  if pid_alive "$1"; then log "$1 already running"; return 0; fi
  case $1 in
    etcd) start_etcd ;;
    kube-apiserver) start_apiserver ;;
    *) log "start: unsupported component $1 (etcd, kube-apiserver)"; exit 2 ;;
  esac
}

up() {
  mkdir -p "$state" "$logs"
  if readyz && pid_alive etcd && pid_alive kube-apiserver && pid_alive kube-controller-manager &&
    pid_alive kube-scheduler && pid_alive kwok; then
    log "cluster already running (kubeconfig: $kubeconfig)"
    return 0
  fi
  down quiet
  mkdir -p "$state" "$logs"
  for t in etcd kube-apiserver kube-controller-manager kube-scheduler kwok kubectl; do
    [[ -x "$bin/$t" ]] || { log "$bin/$t missing: run e2e/tools/build.sh (make tools)"; exit 1; }
  done
  gen_pki
  local admin_token kcm_token sched_token
  admin_token=$(openssl rand -hex 24)
  kcm_token=$(openssl rand -hex 24)
  sched_token=$(openssl rand -hex 24)
  cat >"$state/tokens.csv" <<EOF
$admin_token,nodepatch-admin,nodepatch-admin,"system:masters"
$kcm_token,system:kube-controller-manager,system:kube-controller-manager
$sched_token,system:kube-scheduler,system:kube-scheduler
EOF
  cat >"$state/env" <<EOF
ETCD_PORT=$(free_port)
ETCD_PEER_PORT=$(free_port)
APISERVER_PORT=$(free_port)
KCM_PORT=$(free_port)
SCHEDULER_PORT=$(free_port)
KWOK_PORT=$(free_port)
ADMIN_TOKEN=$admin_token
EOF
  # shellcheck disable=SC1091
  source "$state/env"

  start_etcd
  start_apiserver

  write_kubeconfig "$kubeconfig" nodepatch-admin "$admin_token"
  write_kubeconfig "$state/kcm.kubeconfig" system:kube-controller-manager "$kcm_token"
  write_kubeconfig "$state/scheduler.kubeconfig" system:kube-scheduler "$sched_token"

  start_bg kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig "$state/kcm.kubeconfig" \
    --authentication-kubeconfig "$state/kcm.kubeconfig" --authorization-kubeconfig "$state/kcm.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" \
    --controllers daemonset,deployment,replicaset,disruption,garbagecollector,namespace,serviceaccount,root-ca-certificate-publisher-controller \
    --root-ca-file "$state/pki/ca.crt" \
    --leader-elect=false --use-service-account-credentials=true \
    --concurrent-gc-syncs=5 --v=1
  start_bg kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig "$state/scheduler.kubeconfig" \
    --authentication-kubeconfig "$state/scheduler.kubeconfig" --authorization-kubeconfig "$state/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --leader-elect=false --v=1
  start_bg kwok "$bin/kwok" --kubeconfig "$kubeconfig" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --config "$here/kwok/stages.yaml" \
    --node-ip=10.0.0.2 --cidr=10.0.1.0/24 \
    --server-address "127.0.0.1:$KWOK_PORT"

  local kubectl=("$bin/kubectl" --kubeconfig "$kubeconfig")
  local manifest="$state/nodes.yaml"
  : >"$manifest"
  for ((i = 0; i < NODES; i++)); do node_manifest "$i" >>"$manifest"; done
  "${kubectl[@]}" apply -f "$manifest" >/dev/null
  wait_for kwok 120 "${kubectl[@]}" wait --for=condition=Ready nodes --all --timeout=2s >/dev/null 2>&1
  # The DaemonSet controller needs the default ServiceAccount before pods can be created.
  wait_for kube-controller-manager 60 "${kubectl[@]}" -n default get serviceaccount default >/dev/null 2>&1
  log "cluster up: $("${kubectl[@]}" get nodes --no-headers | wc -l) nodes Ready; kubeconfig $kubeconfig"
}

down() {
  local quiet=${1:-}
  local names=(kwok kube-scheduler kube-controller-manager kube-apiserver etcd)
  for n in "${names[@]}"; do
    if pid_alive "$n"; then kill "$(cat "$state/$n.pid")" 2>/dev/null || true; fi
  done
  for n in "${names[@]}"; do
    [[ -f "$state/$n.pid" ]] || continue
    local pid deadline=$((SECONDS + 15))
    pid=$(cat "$state/$n.pid")
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$state/$n.pid"
  done
  # Keep the PKI (cheap to reuse), drop everything that describes a running cluster.
  rm -rf "$state/etcd" "$state/env" "$state/tokens.csv" "$state"/*.kubeconfig "$kubeconfig"
  [[ -n $quiet ]] || log "cluster down"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) readyz && log "apiserver ready" ;;
  stop) stop_one "${2:?component}" ;;
  start) start_one "${2:?component}" ;;
  *) echo "usage: $0 up|down|status|stop NAME|start NAME" >&2; exit 2 ;;
esac
