# Global rate-limit tier (tests/envoy/mesh/test_global_rate_limit.py): envoyproxy/ratelimit built from the Go
# module proxy into ~/.cache/meshwork/ratelimit/, and Debian's redis-server. See scripts/ratelimit/build.sh.
#
# `make test` builds them first when the tier will run: always in CI (CI=true: a missing Go toolchain or Redis
# fails the run), otherwise when `go` is on PATH.

RATELIMIT_BUILD := scripts/ratelimit/build.sh

ifeq ($(CI),true)
TEST_PREREQS += ratelimit-binaries
else ifneq ($(shell command -v go 2>/dev/null),)
TEST_PREREQS += ratelimit-binaries
endif

.PHONY: ratelimit-binaries

ratelimit-binaries:
	@$(RATELIMIT_BUILD) >/dev/null
