# Benchmarks and the soak test (included by the root Makefile; not part of
# `make test`). Debug builds: a release build takes 20+ minutes here.
# BENCH_ARGS, e.g. `--flows 1000 --clients 16 --sweep 10000`; `--binaries
# target/release` measures release binaries built beforehand (see tollgate-bench).

BENCH_ARGS ?=
SOAK_ARGS ?=

.PHONY: bench bench-policy soak

bench: $(if $(TOLLGATE_VENV),,venv)
	$(CARGO) build -p tollgate-tests -p tollgate-cli --bins
	TOLLGATE_VENV=$${TOLLGATE_VENV:-$(CURDIR)/.venv} target/debug/tollgate-bench $(BENCH_ARGS)
	TOLLGATE_VENV=$${TOLLGATE_VENV:-$(CURDIR)/.venv} target/debug/tollgate-policy-bench
	$(CARGO) bench -p tollgate --bench decide
	$(CARGO) bench -p tollgate --bench terms

# The policy store alone: checks, reloads and cold start against a decision.
bench-policy: $(if $(TOLLGATE_VENV),,venv)
	$(CARGO) build -p tollgate-tests --bin tollgate-policy-bench
	TOLLGATE_VENV=$${TOLLGATE_VENV:-$(CURDIR)/.venv} target/debug/tollgate-policy-bench

soak: $(if $(TOLLGATE_VENV),,venv)
	$(CARGO) build -p tollgate-tests -p tollgate-cli --bins
	TOLLGATE_VENV=$${TOLLGATE_VENV:-$(CURDIR)/.venv} target/debug/tollgate-soak $(SOAK_ARGS)
