# Tracing tier (tests/envoy/mesh/test_tracing.py): a minimal OpenTelemetry Collector (OTLP receiver + file
# exporter) built from the Go module proxy into ~/.cache/meshwork/otelcol/. See scripts/otelcol/build.sh.
#
# `make test` builds it first when the tier will run: always in CI (CI=true), otherwise when `go` is on PATH.

OTELCOL_BUILD := scripts/otelcol/build.sh

ifeq ($(CI),true)
TEST_PREREQS += otelcol-binary
else ifneq ($(shell command -v go 2>/dev/null),)
TEST_PREREQS += otelcol-binary
endif

.PHONY: otelcol-binary

otelcol-binary:
	@$(OTELCOL_BUILD) >/dev/null
