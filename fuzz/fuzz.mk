# Fuzzing: cargo-fuzz targets in fuzz/ (a crate outside the workspace, built
# with the nightly toolchain). A developer tool: `make test` runs the same
# postconditions as bounded proptest cases (shared/tests/hostile_input.rs).
#
#   make fuzz                        every target, $(FUZZ_RUNS) executions each, one at a time
#   make fuzz FUZZ_TARGETS=policy    one target
#   make fuzz FUZZ_RUNS=10000        a quick look
#
# Inputs found while fuzzing go to fuzz/corpus-run/<target> (not committed);
# fuzz/corpus/<target> holds the committed seeds. A crash is written to
# fuzz/artifacts/<target>/: fix it, then commit the input under fuzz/corpus/.

FUZZ_TARGETS ?= newtypes audit_event policy request_body token
FUZZ_RUNS ?= 1000000
# Release build with coverage instrumentation; no sanitizer: Tollgate forbids
# unsafe code, and ASan would halve the executions per second.
FUZZ_FLAGS ?= -O --sanitizer none
FUZZ_ARGS ?= -max_len=4096

.PHONY: fuzz fuzz-build fuzz-tools

fuzz-tools:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked

fuzz-build: fuzz-tools
	cd fuzz && $(CARGO) +nightly fuzz build $(FUZZ_FLAGS)

fuzz: fuzz-build
	@set -e; cd fuzz; for t in $(FUZZ_TARGETS); do \
	  mkdir -p corpus-run/$$t; \
	  echo "== fuzz $$t: $(FUZZ_RUNS) runs"; \
	  $(CARGO) +nightly fuzz run $(FUZZ_FLAGS) $$t corpus-run/$$t corpus/$$t -- -runs=$(FUZZ_RUNS) $(FUZZ_ARGS); \
	done
