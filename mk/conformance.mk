# Gateway API mesh conformance (docs/gateway-api.md): the upstream suite (sigs.k8s.io/gateway-api/conformance
# v1.6.1, embedded in conformance/) against Meshwork on the real cluster tier, profiles MESH-HTTP and MESH-GRPC.
# It owns the cluster for the run like a cluster-tier session (up behind the lock, Meshwork installed from the chart
# with the images of `make images`, down at the end); CONFORMANCE_ARGS=--use-running uses a cluster already up with
# Meshwork installed instead. Builds (nice 10, cached outside the repo): the suite's test binary and the echo image.
#
#   make gateway-api-crds   upstream v1.6.1 CRDs from the Go module proxy -> ~/.cache/meshwork/gateway-api/v1.6.1
#   make conformance-suite  go test -c of conformance/ -> ~/.cache/meshwork/conformance/mesh.test
#   make echo-image         Istio's echo server+client from source -> OCI archive (the suite's echo-advanced image)
#   make conformance        all of the above (+ cluster binaries, images), then the suite; report in docs/conformance/
#
# `make test` builds the suite and the echo image with the other prerequisites (before any test tier) and runs the
# suite after pytest, writing its report to a temporary directory (the committed report stays as it is).

GATEWAY_API_CACHE ?= $(HOME)/.cache/meshwork/gateway-api
CONFORMANCE_BIN   ?= $(HOME)/.cache/meshwork/conformance/mesh.test
MESHWORK_VERSION  := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' pyproject.toml | head -1)

.PHONY: gateway-api-crds conformance-suite echo-image conformance

gateway-api-crds:
	@scripts/gateway-api/fetch-crds.sh >/dev/null

conformance-suite:
	@mkdir -p $(dir $(CONFORMANCE_BIN))
	cd conformance && GOFLAGS=-mod=mod nice -n 10 go test -tags conformance -c -gcflags=all=-dwarf=false -ldflags="-s -w" -o $(CONFORMANCE_BIN) .

echo-image:
	@scripts/gateway-api/build-echo-image.sh >/dev/null

conformance: install k8s-cluster-binaries images gateway-api-crds conformance-suite echo-image
	@$(MAKE) --no-print-directory conformance-run

# The suite alone, on what `conformance`'s prerequisites built (make test's cluster lane runs it: its builds are done
# by then, and none may run beside the host lane's tests).
.PHONY: conformance-run
conformance-run:
	$(BIN)/python scripts/gateway-api/conformance.py --crds $(GATEWAY_API_CACHE)/v1.6.1 \
		--echo-image "$$(scripts/gateway-api/build-echo-image.sh)" --suite $(CONFORMANCE_BIN) \
		--version v$(MESHWORK_VERSION) $(CONFORMANCE_ARGS)

TEST_PREREQS += gateway-api-crds conformance-suite echo-image
