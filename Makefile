# Thin forwarders to `cargo xtask` (R8): every target is one xtask call, no logic lives here.
# Variables as in the team guide; empty ones leave the manifest's value in force.
DOCKER_REGISTRY ?= docker.io
DOCKER_ORG ?= battlescope
VERSION ?=
PLATFORMS ?= linux/amd64,linux/arm64
SERVICE_NAME ?=

BUMP ?= minor

XTASK_TARGET_ARGS = --registry $(DOCKER_REGISTRY) --organization $(DOCKER_ORG) $(if $(SERVICE_NAME),--service $(SERVICE_NAME))
XTASK_IMAGE_ARGS = $(XTASK_TARGET_ARGS) $(if $(VERSION),--tag $(VERSION))

.PHONY: docker-build docker-build-multi docker-push docker-build-push docker-build-push-multi release dockerfiles docs doctor

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

## The whole release (BUMP=major|minor|patch).
release:
	cargo xtask release --bump $(BUMP) $(XTASK_TARGET_ARGS)

dockerfiles:
	cargo xtask dockerfiles

docs:
	cargo xtask docs

doctor:
	cargo xtask doctor
