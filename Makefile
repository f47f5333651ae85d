# credsync: the two set-up commands are `make demo` and `make test`.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
export CARGO_TARGET_DIR ?= $(HOME)/.cache/credsync/target
CARGO ?= cargo

.PHONY: tools build fmt-check clippy crds crds-check test demo bench lua-test

# kube-apiserver, etcd, kubectl and helm from the official Go modules, cached under ~/.cache/credsync.
tools:
	bash hack/build-tools.sh all

build:
	$(CARGO) build --features dev --bins

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --all-targets --features dev -- -D warnings

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

# Integration tests start their own kube-apiserver + etcd from KUBEBUILDER_ASSETS.
# Fails (never skips) when the control plane cannot be built.
test: fmt-check clippy crds-check lua-test
	assets="$${KUBEBUILDER_ASSETS:-}"; \
	if [[ -z "$$assets" ]]; then assets="$$(bash hack/build-tools.sh control-plane | tail -n 1)"; fi; \
	export KUBEBUILDER_ASSETS="$$assets"; \
	$(CARGO) test --features dev -- --test-threads=2

demo:
	bash hack/demo.sh

bench:
	if [[ -f hack/bench.sh ]]; then bash hack/bench.sh; \
	else $(CARGO) run --release --features dev --bin credsync-bench; fi
