# Lambda packaging and the `sam build` entry points. Included by the root
# Makefile; works on its own too (`make -f infra/infra.mk package`).
#
#   make package          validate the policies, build the five functions in
#                         release mode (one cargo run), bundle and zip each
#                         under target/lambda/<binary>/, check the binaries
#   make check-templates  cfn-lint and checkov on infra/*.yaml
#   make build-<LogicalId>   what `sam build` runs (BuildMethod: makefile)
#
# LAMBDA_TARGET: empty builds for this machine (x86_64 here, the template's
# default architecture). For arm64 on an arm64 machine set LAMBDA_ARCH=arm64;
# to cross-compile, set LAMBDA_TARGET=aarch64-unknown-linux-gnu with a linker
# for it, or replace the build with cargo-lambda (infra/DEPLOY.md):
#   make package LAMBDA_ARCH=arm64 LAMBDA_BIN_DIR=target/lambda \
#     LAMBDA_BUILD='cargo lambda build --release --arm64 -p tollgate-requests ...'

CARGO ?= cargo
PYTHON3 ?= python3
LAMBDA_FUNCTIONS := tollgate-requests tollgate-reviews tollgate-credentials tollgate-revocations tollgate-expiry
LAMBDA_TARGET ?=
LAMBDA_ARCH ?= x86_64
LAMBDA_OUT ?= target/lambda
POLICY_DIR ?= infra/policies
# The policy check that gates packaging: the same validation the functions
# run at start-up, so a bundle never ships a policy set that would not load.
POLICY_VALIDATE ?= $(CARGO) run --quiet -p tollgate-cli -- policy validate

LAMBDA_BUILD ?= $(CARGO) build --release $(if $(LAMBDA_TARGET),--target $(LAMBDA_TARGET)) \
	$(addprefix -p ,$(LAMBDA_FUNCTIONS))
LAMBDA_BIN_DIR ?= target/$(if $(LAMBDA_TARGET),$(LAMBDA_TARGET)/)release

.PHONY: package lambda-policies lambda-release lambda-bundles check-templates \
	build-RequestsFunction build-ReviewsFunction build-CredentialsFunction \
	build-RevocationsFunction build-ExpiryFunction

lambda-policies:
	$(POLICY_VALIDATE) $(POLICY_DIR)

lambda-release:
	$(LAMBDA_BUILD)

lambda-bundles: lambda-policies lambda-release
	$(PYTHON3) scripts/lambda_bundle.py --bin-dir $(LAMBDA_BIN_DIR) --policies $(POLICY_DIR) \
		--out $(LAMBDA_OUT) $(LAMBDA_FUNCTIONS)

package: lambda-bundles
	$(PYTHON3) scripts/check-lambda-binaries --arch $(LAMBDA_ARCH) $(addprefix $(LAMBDA_OUT)/,$(LAMBDA_FUNCTIONS))

check-templates:
	scripts/check-templates

# `sam build --build-in-source` runs these from the repository root (the
# functions' CodeUri) with ARTIFACTS_DIR set; the bundle directory already
# holds exactly what goes into /var/task.
define sam_build_target
build-$(1): lambda-bundles
	@test -n "$$(ARTIFACTS_DIR)" || { echo "build-$(1): ARTIFACTS_DIR is not set (sam build sets it)" >&2; exit 1; }
	mkdir -p "$$(ARTIFACTS_DIR)"
	rm -rf "$$(ARTIFACTS_DIR)/policies"
	cp -p $(LAMBDA_OUT)/$(2)/bootstrap "$$(ARTIFACTS_DIR)/bootstrap"
	cp -Rp $(LAMBDA_OUT)/$(2)/policies "$$(ARTIFACTS_DIR)/policies"
endef
$(eval $(call sam_build_target,RequestsFunction,tollgate-requests))
$(eval $(call sam_build_target,ReviewsFunction,tollgate-reviews))
$(eval $(call sam_build_target,CredentialsFunction,tollgate-credentials))
$(eval $(call sam_build_target,RevocationsFunction,tollgate-revocations))
$(eval $(call sam_build_target,ExpiryFunction,tollgate-expiry))
