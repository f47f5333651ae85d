#!/usr/bin/env bash
# `make bench`: build the release operator and benchmark, then run the benchmark against a local
# control plane and the simulators. Arguments go to credsync-bench, e.g.
#   make bench                       # full run (N = 1,000 and 10,000; about 20 min on 2 cores)
#   bash hack/bench.sh --quick       # smoke run (N = 200; under 3 min)
#   bash hack/bench.sh --n 1000 --latency-ms 0
#   bash hack/bench.sh --scale       # scale run instead (N = 100,000 SsoAppCredentials; target/bench/scale.md)
# The peer phase runs the External Secrets Operator, built once from its Go module by
# hack/build-tools.sh eso (10-20 minutes the first time); BENCH_SKIP_ESO=1 skips building it
# (the peer phase then runs credsync and the floor only).
# Output: target/bench/report.md and target/bench/latency.svg (see docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/credsync/target}"
CARGO="${CARGO:-cargo}"
if [[ -z "${KUBEBUILDER_ASSETS:-}" ]]; then
  KUBEBUILDER_ASSETS="$(bash hack/build-tools.sh control-plane | tail -n 1)"
fi
export KUBEBUILDER_ASSETS
if [[ -z "${BENCH_SKIP_ESO:-}" ]]; then
  # Without Go (or if the build fails) the peer phase runs credsync and the floor only.
  bash hack/build-tools.sh eso >/dev/null || echo "bench: ESO not built; its peer runs are skipped" >&2
fi
args=("$@")
if [[ ${#args[@]} -eq 0 && -n "${BENCH_ARGS:-}" ]]; then
  read -r -a args <<< "$BENCH_ARGS"
fi
$CARGO build --release --workspace --bin credsync --bin credsync-bench
exec "$CARGO_TARGET_DIR/release/credsync-bench" \
  --operator-bin "$CARGO_TARGET_DIR/release/credsync" --out target/bench "${args[@]}"
