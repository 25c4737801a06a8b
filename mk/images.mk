# Container images without Docker (images/build.sh; docs/images.md): control-plane and sidecar as OCI archives in
# $(MESHWORK_IMAGES_CACHE or ~/.cache/meshwork/images), imported by the cluster tier. Needs root (debootstrap).
# Docker/Podman users: images/control-plane/Containerfile and images/sidecar/Containerfile build the same images.

.PHONY: images

images: install
	@scripts/k8s/install-cluster-packages.sh
	@images/build.sh
