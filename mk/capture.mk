# Capture tests (tests/envoy/test_capture_netns.py): network namespaces + iptables + real Envoy. They need root,
# `ip` and `iptables-restore`; in CI (CI=true) `make test` installs the tools first (Debian apt) and the tests fail
# rather than skip when they cannot run.

.PHONY: capture-tools

ifeq ($(CI),true)
TEST_PREREQS += capture-tools
endif

capture-tools:
	@scripts/capture/install-tools.sh
