# Tollgate: developer entry points. `make demo` and `make test` are the two a
# newcomer needs; everything else is here for day-to-day work.

SHELL := /bin/bash
CARGO ?= cargo

.PHONY: help venv test lint fmt build demo up down bench package release clean-local

help:
	@echo "make demo     bring up the local broker and walk through request -> approve -> credentials -> revoke"
	@echo "make test     every check CI runs: fmt, clippy, all tests, template checks, the console in headless Chromium, the API contract (Schemathesis)"
	@echo "make up/down  start/stop the local broker (emulator, table, example roles, server)"
	@echo "make bench    benchmarks (not part of make test)"
	@echo "make fuzz     cargo-fuzz targets, 1M executions each (nightly; not part of make test)"
	@echo "make package  release Lambda bundles under target/lambda/<arch>/ (LAMBDA_ARCH=x86_64|arm64)"
	@echo "make release  versioned, checksummed zips, packaged template and CLI under dist/ (infra/DEPLOY.md)"

# The Python tools (emulator, awscli, template linters), pinned in scripts/requirements.txt.
venv:
	scripts/aws-local venv >/dev/null

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

build:
	$(CARGO) build --workspace --bins

test: venv lint build
	$(CARGO) test --workspace --no-fail-fast
	@if [ -x scripts/check-templates ]; then scripts/check-templates; fi
	scripts/browser-tests
	scripts/api-contract

demo: build
	scripts/demo

up: build
	scripts/local-broker up

down:
	scripts/local-broker down

-include infra/infra.mk
-include fuzz/fuzz.mk
-include bench.mk
