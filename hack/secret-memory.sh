#!/usr/bin/env bash
# Measures the operator's RSS with and without 5,000 unrelated 10 KiB Secrets in the cluster
# (the Secret watch is metadata-only and paged). Needs `cargo build --workspace --bins`.
set -euo pipefail
WORK="${WORK:-/tmp/credsync-memory}"; mkdir -p "$WORK"
T=$HOME/.cache/credsync/target/debug
BIN=$HOME/.cache/credsync/bin/k8s-v1.36.3
$T/credsync-dev control-plane --kubeconfig-out ${WORK:-/tmp/credsync-memory}/kubeconfig > ${WORK:-/tmp/credsync-memory}/cp.log 2>&1 &
CP=$!
trap 'kill $CP $OP1 $OP2 2>/dev/null || true' EXIT
OP1=; OP2=
for i in $(seq 1 300); do grep -q '^ready$' ${WORK:-/tmp/credsync-memory}/cp.log && break; sleep 0.2; done
export KUBECONFIG=${WORK:-/tmp/credsync-memory}/kubeconfig
k() { $BIN/kubectl "$@"; }
k create ns credsync-system >/dev/null; k create ns noise >/dev/null
rss() { awk '/VmRSS|VmHWM/ {printf "%s %s kB  ", $1, $2}' /proc/$1/status; echo; }
$T/credsync run --allow-http --allow-private-vendor-addresses --log-level warn --metrics-addr 127.0.0.1:18090 > ${WORK:-/tmp/credsync-memory}/op1.log 2>&1 &
OP1=$!
sleep 15
echo "operator A, no unrelated Secrets:      $(rss $OP1)"
python3 - <<'PY'
import base64, os, json
blob = base64.b64encode(os.urandom(7680)).decode()  # 10 KiB of base64
for batch in range(10):
    items = [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"noise-{batch}-{i}", "namespace": "noise"},
              "data": {"blob": blob}} for i in range(500)]
    json.dump({"apiVersion": "v1", "kind": "List", "items": items}, open(f"${WORK:-/tmp/credsync-memory}/batch-{batch}.json", "w"))
PY
for b in $(seq 0 9); do k create -f ${WORK:-/tmp/credsync-memory}/batch-$b.json > /dev/null; done
echo "created $(k get secrets -n noise --no-headers | wc -l) Secrets of 10 KiB in namespace noise"
sleep 20
echo "operator A, after 5000 unrelated Secrets: $(rss $OP1)"
$T/credsync run --allow-http --allow-private-vendor-addresses --log-level warn --metrics-addr 127.0.0.1:18091 > ${WORK:-/tmp/credsync-memory}/op2.log 2>&1 &
OP2=$!
sleep 20
echo "operator B, started with 5000 present:  $(rss $OP2)"
