# Kubernetes test tier (tests/k8s, marker `k8s`): a real kube-apiserver + etcd. See docs/k8s-test-tier.md.
#
#   make k8s-binaries   build (or reuse) kube-apiserver and helm in $(K8S_CACHE)/<version>/
#   make k8s-up         start etcd + kube-apiserver on loopback; prints the kubeconfig path for kubectl
#   make k8s-down       stop them and remove their temp dir
#
# `make test` builds the binaries first when the tier will run: always in CI (CI=true: the tier is required, a
# missing Go toolchain fails the run), otherwise when `go` is on PATH (without it the tier is skipped, reason shown).

K8S_BUILD  := scripts/k8s/build-binaries.sh
K8S_PY     := PYTHONPATH=operator$(if $(PYTHONPATH),:$(PYTHONPATH)) $(BIN)/python -m mesh_operator.testing.apiserver
K8S_CACHE  := $(or $(MESHWORK_K8S_CACHE),$(HOME)/.cache/meshwork/k8s)

ifeq ($(CI),true)
TEST_PREREQS += k8s-binaries
else ifneq ($(shell command -v go 2>/dev/null),)
TEST_PREREQS += k8s-binaries
endif

.PHONY: k8s-binaries k8s-up k8s-down k8s-status

k8s-binaries:
	@$(K8S_BUILD) >/dev/null

k8s-up: install k8s-binaries
	@$(K8S_PY) up

k8s-down:
	@$(K8S_PY) down

k8s-status:
	@$(K8S_PY) status
