# nodepatch: build, test and demo entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

KUBECONFIG_LOCAL := $(CURDIR)/.local/kubeconfig
CARGO ?= cargo

.PHONY: help
help: ## list targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## install the Debian packages tests need (only what is missing)
	scripts/install-deps.sh

.PHONY: tools
tools: ## build (or reuse) etcd, kube-apiserver, kcm, scheduler, kubectl, kwok, helm into .local/bin
	e2e/tools/build.sh

.PHONY: cluster-up
cluster-up: tools ## start the local control plane with 3 fake nodes (.local/kubeconfig)
	e2e/cluster.sh up

.PHONY: cluster-down
cluster-down: ## stop the local control plane
	e2e/cluster.sh down

.PHONY: build
build: ## build the nodepatch binary (debug)
	$(CARGO) build

.PHONY: crds
crds: manifests ## alias of manifests

.PHONY: manifests
manifests: tools ## regenerate crds/, the chart's CRDs and README, and the kustomize tree config/ (from the chart)
	$(CARGO) run -q -- crd --output-dir crds
	$(CARGO) run -q -- crd --output-dir charts/nodepatch/files/crds
	scripts/gen-config.sh
	scripts/chart-readme.py

.PHONY: lint
lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

.PHONY: test-unit
test-unit: ## unit, property and offline integration tests (no cluster needed)
	$(CARGO) test --lib --bins
	@for t in tests/*.rs; do n=$$(basename $$t .rs); case $$n in cluster_*|e2e_*) ;; *) $(CARGO) test --test $$n || exit 1;; esac; done

.PHONY: test
test: deps tools ## everything CI runs: lint, all tests against the real control plane
	scripts/test.sh

.PHONY: demo
demo: deps tools ## the quick start: local cluster, chart, real agents on Debian roots, scan + patch now
	$(CARGO) build --bin nodepatch
	$(CARGO) run --example demo

.PHONY: demo-down
demo-down: ## stop the demo (and the local cluster)
	e2e/cluster.sh down

.PHONY: bench
bench: ## criterion benchmarks (pure code)
	$(CARGO) bench

.PHONY: bench-scale
bench-scale: deps tools ## the controller against the real apiserver with NODES (default 500) fake nodes
	$(CARGO) build --release --bin nodepatch
	$(CARGO) run --release --example scale
