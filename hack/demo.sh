#!/usr/bin/env bash
# `make demo`: a local control plane, the vendor simulators and the operator; applies examples/,
# waits until every example is Ready and shows `kubectl get credsync`. Runs until Ctrl-C
# (DEMO_EXIT=1: stop right after showing them).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/credsync/target}"

BIN="${KUBEBUILDER_ASSETS:-$(bash hack/build-tools.sh control-plane | tail -n 1)}"
cargo build -q --workspace --bins
DEV="$CARGO_TARGET_DIR/debug/credsync-dev"
STATE="$(mktemp -d "${TMPDIR:-/tmp}/credsync-demo.XXXXXX")"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$STATE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_ready() { # log-file what
  for _ in $(seq 1 600); do
    grep -q '^ready$' "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "demo: $2 did not start; its log:" >&2; cat "$1" >&2; exit 1
}

echo "demo: starting kube-apiserver + etcd"
KUBEBUILDER_ASSETS="$BIN" "$DEV" control-plane --kubeconfig-out "$STATE/kubeconfig" >"$STATE/control-plane.log" 2>&1 &
PIDS+=($!)
wait_ready "$STATE/control-plane.log" "the control plane"
grep '^kube-apiserver' "$STATE/control-plane.log"

if "$DEV" help simulators >/dev/null 2>&1; then
  echo "demo: starting the vendor simulators"
  "$DEV" simulators --helloid-port 18081 --superoffice-port 18082 --oracle-port 18083 --apex-port 18084 \
    >"$STATE/simulators.log" 2>&1 &
  PIDS+=($!)
  wait_ready "$STATE/simulators.log" "the simulators"
  grep -v '^ready$' "$STATE/simulators.log"
else
  echo "demo: WARNING: this credsync-dev has no 'simulators' command; examples will not become Ready" >&2
fi

export KUBECONFIG="$STATE/kubeconfig"
kubectl() { "$BIN/kubectl" "$@"; }
kubectl create namespace credsync-system >/dev/null

echo "demo: starting the operator (log: $STATE/operator.log)"
"$CARGO_TARGET_DIR/debug/credsync" run --allow-http --allow-private-vendor-addresses --log-format pretty --metrics-addr 127.0.0.1:18080 \
  --operator-namespace credsync-system >"$STATE/operator.log" 2>&1 &
PIDS+=($!)

kubectl apply -f examples/
for kind in crmusercredentials erpidentities ssoappcredentials; do
  if [[ -n "$(kubectl get "$kind" -A -o name)" ]]; then
    kubectl wait --for=condition=Ready --timeout=120s -A "$kind" --all || {
      kubectl get credsync -A >&2 || true
      echo "demo: not every $kind became Ready; operator log (last 40 lines):" >&2
      tail -n 40 "$STATE/operator.log" >&2
      exit 1
    }
  fi
done
echo
kubectl get credsync -A
if [[ "${DEMO_EXIT:-0}" == "1" ]]; then
  exit 0
fi
echo
echo "demo: running. Try: KUBECONFIG=$KUBECONFIG $BIN/kubectl describe ssoappcredential -n credsync-demo mike-github"
echo "demo: metrics at http://127.0.0.1:18080/metrics. Ctrl-C stops everything."
wait
