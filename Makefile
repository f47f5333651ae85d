# credsync: the two set-up commands are `make demo` and `make test`.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
export CARGO_TARGET_DIR ?= $(HOME)/.cache/credsync/target
CARGO ?= cargo

.PHONY: tools build fmt-check clippy crds crds-check unit-test integration-test test demo bench lua-test

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
	@diff -u crds/credsync.yaml <($(CARGO) run -q --bin credsync -- crds) || { echo "crds/ is stale: run 'make crds'"; exit 1; }
	@diff -u crds/credsync.yaml charts/credsync/crds/credsync.yaml || { echo "charts/credsync/crds is stale: run 'make crds'"; exit 1; }

lua-test:
	lua5.4 deploy/argocd/health_test.lua

# Integration tests start their own kube-apiserver + etcd from KUBEBUILDER_ASSETS.
test: fmt-check clippy crds-check lua-test
	export KUBEBUILDER_ASSETS="$${KUBEBUILDER_ASSETS:-$$(bash hack/build-tools.sh control-plane | tail -n 1)}"; \
	$(CARGO) test --features dev -- --test-threads=2

demo:
	bash hack/demo.sh

bench:
	bash hack/bench.sh
