#!/usr/bin/env bash
# The test command (README.md, .ci/run): one loopback registry on a free port, seeded once with
# the base-image stand-ins, shared by every end-to-end test through XTASK_TEST_REGISTRY; then
# formatting, lints and the whole test suite. Needs scripts/provision.sh to have run.
set -euo pipefail
cd "$(dirname "$0")/.."

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
registry_dir=$(mktemp -d)
registry=$(cargo xtask local-registry start --port "$port" --dir "$registry_dir")
trap 'cargo xtask local-registry stop --port "$port" --dir "$registry_dir"; rm -rf "$registry_dir"' EXIT
scripts/seed-base-images.sh "$registry"

export XTASK_TEST_REGISTRY=$registry
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
