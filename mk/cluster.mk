# Cluster test tier (tests/cluster, marker `cluster`): a real single-node Kubernetes where pods run. Needs root.
# See docs/cluster-test-tier.md.
#
#   make k8s-cluster-packages   install the Debian packages it needs (runc, CNI plugins, iptables, umoci, ...)
#   make k8s-cluster-binaries   build (or reuse) kubelet, controller-manager, scheduler, kube-proxy, kubectl,
#                               containerd, CoreDNS and pause in $(K8S_CACHE)/<version>/ (after kube-apiserver, helm)
#   make k8s-cluster            start the cluster (egress guard first); prints the kubeconfig path
#   make k8s-cluster-down       stop it and clean the host (also after a crashed run)

CLUSTER_BUILD    := scripts/k8s/build-cluster-binaries.sh
CLUSTER_PACKAGES := scripts/k8s/install-cluster-packages.sh
CLUSTER_PY       := PYTHONPATH=operator$(if $(PYTHONPATH),:$(PYTHONPATH)) $(BIN)/python -m mesh_operator.testing.cluster

.PHONY: k8s-cluster-packages k8s-cluster-binaries k8s-cluster k8s-cluster-down k8s-cluster-status

k8s-cluster-packages:
	@$(CLUSTER_PACKAGES)

# (APT_DONE=1: `make test-prereqs` installed the packages already, so the build starts at once in its job slot.)
k8s-cluster-binaries: $(if $(APT_DONE),,k8s-cluster-packages)
	@$(CLUSTER_BUILD) >/dev/null

k8s-cluster: install k8s-cluster-binaries
	@$(CLUSTER_PY) up

k8s-cluster-down:
	@$(CLUSTER_PY) down

k8s-cluster-status:
	@$(CLUSTER_PY) status

# `make test` runs the cluster tier when it can: always in CI (CI=true: required, a machine that cannot run it fails
# the run), otherwise as root with `go` on PATH; elsewhere tests/cluster is skipped with the reason shown. Its Go
# builds and the images are prerequisites here, so they finish before any test tier starts (never alongside).
ifeq ($(CI),true)
TEST_PREREQS += k8s-cluster-binaries images
else ifeq ($(shell id -u 2>/dev/null)$(if $(shell command -v go 2>/dev/null),-go),0-go)
TEST_PREREQS += k8s-cluster-binaries images
endif
