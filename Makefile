# Thin forwarders to `cargo xtask` (R8): every target is one xtask call, no logic lives here.
# Variables as in the team guide; empty ones leave the manifest's value in force.
DOCKER_REGISTRY ?= docker.io
DOCKER_ORG ?= battlescope
VERSION ?=
PLATFORMS ?= linux/amd64,linux/arm64
SERVICE_NAME ?=

XTASK_IMAGE_ARGS = --registry $(DOCKER_REGISTRY) --organization $(DOCKER_ORG) \
	$(if $(VERSION),--tag $(VERSION)) $(if $(SERVICE_NAME),--service $(SERVICE_NAME))

.PHONY: docker-build docker-build-multi docker-push docker-build-push docker-build-push-multi dockerfiles doctor

## Build for this machine's platform, loaded into the local engine.
docker-build:
	cargo xtask build $(XTASK_IMAGE_ARGS)

## Build for every platform in PLATFORMS.
docker-build-multi:
	cargo xtask build $(XTASK_IMAGE_ARGS) --platform $(PLATFORMS)

## Push this machine's platform (buildx pushes what it builds; cached layers are not rebuilt).
docker-push:
	cargo xtask build $(XTASK_IMAGE_ARGS) --push

## Build and push this machine's platform.
docker-build-push:
	cargo xtask build $(XTASK_IMAGE_ARGS) --push

## Build and push every platform in PLATFORMS as one multi-arch image.
docker-build-push-multi:
	cargo xtask build $(XTASK_IMAGE_ARGS) --platform $(PLATFORMS) --push

dockerfiles:
	cargo xtask dockerfiles

doctor:
	cargo xtask doctor
