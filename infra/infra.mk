# Lambda packaging, the `sam build` entry points and releases. Included by
# the root Makefile; works on its own too (`make -f infra/infra.mk package`).
#
#   make package          validate the policies, build the five functions in
#                         release mode for LAMBDA_ARCH (one cargo run), bundle
#                         and zip each under target/lambda/<arch>/<binary>/,
#                         check every binary
#   make release          versioned, checksummed zips, a packaged template and
#                         the tollgate CLI under dist/tollgate-<version>/
#                         (scripts/release; see infra/DEPLOY.md)
#   make check-templates  cfn-lint, checkov and `sam validate --lint`
#   make build-<LogicalId>   what `sam build` runs (BuildMethod: makefile)
#
# Architecture. LAMBDA_ARCH=x86_64 (the default) or arm64 chooses what is
# built and where it goes: cargo builds for the matching Linux target
# (x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu) into
# target/<triple>/release, never the host's own target/release, so a build on
# macOS or for the other architecture cannot ship the wrong binary; every
# bundle is checked for that architecture. `sam build` passes only
# ARTIFACTS_DIR to make, so give the same LAMBDA_ARCH in the environment as
# the template's Architecture:
#   LAMBDA_ARCH=arm64 sam build --build-in-source --parameter-overrides Architecture=arm64 ...
# Cross-compiling needs the target's linker, or cargo-lambda (zig):
#   make package LAMBDA_ARCH=arm64 LAMBDA_BUILDER=cargo-lambda
#
# Built once: `sam build` runs one build-<LogicalId> per function (all five at
# once with --parallel). The first takes the build lock, validates the
# policies and builds the five functions in one cargo run, and leaves a stamp
# in SAM's build directory (which SAM empties at the start of every build);
# the others wait for the lock, see the stamp and only bundle. Bundling is
# safe to run concurrently (scripts/lambda_bundle.py).

CARGO ?= cargo
PYTHON3 ?= python3
LAMBDA_FUNCTIONS := tollgate-requests tollgate-reviews tollgate-credentials tollgate-revocations tollgate-expiry
# The makefile itself, for the locked recursive build below.
INFRA_MK := $(lastword $(MAKEFILE_LIST))

LAMBDA_ARCH ?= x86_64
ifeq ($(LAMBDA_ARCH),x86_64)
LAMBDA_TRIPLE ?= x86_64-unknown-linux-gnu
else ifeq ($(LAMBDA_ARCH),arm64)
LAMBDA_TRIPLE ?= aarch64-unknown-linux-gnu
else
$(error LAMBDA_ARCH must be x86_64 or arm64, not `$(LAMBDA_ARCH)`)
endif

# Where cargo builds (it honours CARGO_TARGET_DIR, so this does too).
LAMBDA_TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
LAMBDA_BUILDER ?= cargo
ifeq ($(LAMBDA_BUILDER),cargo)
LAMBDA_BUILD ?= $(CARGO) build --release --locked --target $(LAMBDA_TRIPLE) $(addprefix -p ,$(LAMBDA_FUNCTIONS))
LAMBDA_BIN_DIR ?= $(LAMBDA_TARGET_DIR)/$(LAMBDA_TRIPLE)/release
else ifeq ($(LAMBDA_BUILDER),cargo-lambda)
LAMBDA_BUILD ?= $(CARGO) lambda build --release --locked --target $(LAMBDA_TRIPLE) \
	--lambda-dir $(LAMBDA_TARGET_DIR)/cargo-lambda/$(LAMBDA_ARCH) $(addprefix -p ,$(LAMBDA_FUNCTIONS))
LAMBDA_BIN_DIR ?= $(LAMBDA_TARGET_DIR)/cargo-lambda/$(LAMBDA_ARCH)
else
$(error LAMBDA_BUILDER must be cargo or cargo-lambda, not `$(LAMBDA_BUILDER)`)
endif
LAMBDA_OUT ?= $(LAMBDA_TARGET_DIR)/lambda/$(LAMBDA_ARCH)
POLICY_DIR ?= infra/policies
# The policy check that gates packaging: the same validation the functions
# run at start-up, so a bundle never ships a policy set that would not load.
POLICY_VALIDATE ?= $(CARGO) run --quiet --locked -p tollgate-cli -- policy validate

BUNDLE := $(PYTHON3) scripts/lambda_bundle.py
CHECK_BINARIES := $(PYTHON3) scripts/check-lambda-binaries --arch $(LAMBDA_ARCH)

.PHONY: package release lambda-build sam-lambda-build lambda-policies lambda-release lambda-bundles check-templates \
	build-RequestsFunction build-ReviewsFunction build-CredentialsFunction \
	build-RevocationsFunction build-ExpiryFunction

lambda-policies:
	$(POLICY_VALIDATE) $(POLICY_DIR)

lambda-release:
	$(LAMBDA_BUILD)

# Validate and build under one lock: concurrent callers build once.
lambda-build:
	@mkdir -p $(LAMBDA_OUT)
	$(BUNDLE) locked $(LAMBDA_OUT)/.build.lock -- \
		$(MAKE) --no-print-directory -f $(INFRA_MK) lambda-policies lambda-release

# The same, once per `sam build` (see above).
sam-lambda-build:
	@test -n "$$ARTIFACTS_DIR" || { echo "ARTIFACTS_DIR is not set (sam build sets it)" >&2; exit 1; }
	@mkdir -p $(LAMBDA_OUT)
	$(BUNDLE) locked --once "$$(dirname "$$ARTIFACTS_DIR")/.tollgate-built-$(LAMBDA_ARCH)" $(LAMBDA_OUT)/.build.lock -- \
		$(MAKE) --no-print-directory -f $(INFRA_MK) lambda-policies lambda-release

lambda-bundles: lambda-build
	$(BUNDLE) bundle --bin-dir $(LAMBDA_BIN_DIR) --policies $(POLICY_DIR) \
		--out $(LAMBDA_OUT) $(LAMBDA_FUNCTIONS)

package: lambda-bundles
	$(CHECK_BINARIES) $(addprefix $(LAMBDA_OUT)/,$(LAMBDA_FUNCTIONS))

# Versioned release: the bundles of LAMBDA_ARCH, the tollgate CLI for this
# machine, the templates, checksums.
RELEASE_DIR ?= dist
CLI_BUILD ?= $(CARGO) build --release --locked -p tollgate-cli
CLI_BIN ?= $(LAMBDA_TARGET_DIR)/release/tollgate
release: package
	$(CLI_BUILD)
	$(PYTHON3) scripts/release --arch $(LAMBDA_ARCH) --bundles $(LAMBDA_OUT) \
		--cli $(CLI_BIN) --out $(RELEASE_DIR)

check-templates:
	scripts/check-templates

# `sam build --build-in-source` runs these from the repository root (the
# functions' CodeUri) with ARTIFACTS_DIR set: build once per sam build, bundle this
# function for LAMBDA_ARCH into ARTIFACTS_DIR, then check both the bundle and
# what SAM will deploy.
define sam_build_target
build-$(1): sam-lambda-build
	$(BUNDLE) bundle --bin-dir $(LAMBDA_BIN_DIR) --policies $(POLICY_DIR) \
		--out $(LAMBDA_OUT) --artifacts-dir "$$(ARTIFACTS_DIR)" $(2)
	$(CHECK_BINARIES) $(LAMBDA_OUT)/$(2) "$$(ARTIFACTS_DIR)"
endef
$(eval $(call sam_build_target,RequestsFunction,tollgate-requests))
$(eval $(call sam_build_target,ReviewsFunction,tollgate-reviews))
$(eval $(call sam_build_target,CredentialsFunction,tollgate-credentials))
$(eval $(call sam_build_target,RevocationsFunction,tollgate-revocations))
$(eval $(call sam_build_target,ExpiryFunction,tollgate-expiry))
