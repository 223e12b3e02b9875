#!/usr/bin/env bash
# Build benchmark, measured in one run on this machine:
#  1. wall time of `cargo xtask build` for every service, linux/amd64 + linux/arm64, pushed,
#     with no build cache;
#  2. for battle-service, the arm64 build time of the generated Dockerfile (work on the build
#     platform, no emulated RUN in the final stage) against a naive single-platform-style
#     Dockerfile whose steps all run under QEMU (the team guide's pattern), both --no-cache.
# Usage: scripts/bench-build.sh [HOST:PORT]   (default: a fresh loopback registry, seeded)
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
runs=${BENCH_RUNS:-3}

if [ $# -ge 1 ]; then
  registry=$1
else
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  registry_dir=$(mktemp -d)
  registry=$(cargo xtask local-registry start --port "$port" --dir "$registry_dir")
  trap 'cargo xtask local-registry stop --port "$port" --dir "$registry_dir"; rm -rf "$registry_dir"' EXIT
  scripts/seed-base-images.sh "$registry"
fi
cargo build -q -p xtask
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.1f}')"; }

start=$(now)
cargo xtask build --platform linux/amd64,linux/arm64 --push --no-cache --registry "$registry" \
  --base-mirror "$registry" --network host >/dev/null 2>&1
all=$(elapsed "$start" "$(now)")
echo "7 services x 2 platforms, pushed, no cache: ${all}s"

naive=$(mktemp -d)
cat > "$naive/Dockerfile" <<'DOCKERFILE'
FROM node:20-alpine
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY . .
RUN mkdir -p /app/data && chown -R 1001:1001 /app
USER 1001:1001
CMD ["node", "src/index.js"]
DOCKERFILE
arm64_build() { # <dockerfile>
  local start; start=$(now)
  docker buildx build --quiet --no-cache --network host --platform linux/arm64 --file "$1" \
    --build-context "node:20-alpine=docker-image://$registry/library/node:20-alpine" \
    --output type=cacheonly services/battle-service >/dev/null
  elapsed "$start" "$(now)"
}
generated=(); emulated=()
for _ in $(seq "$runs"); do
  generated+=("$(arm64_build docker/battle-service.Dockerfile)")
  emulated+=("$(arm64_build "$naive/Dockerfile")")
done
rm -rf "$naive"
python3 - "${generated[*]}" "${emulated[*]}" <<'PY'
import statistics, sys
generated = [float(x) for x in sys.argv[1].split()]
emulated = [float(x) for x in sys.argv[2].split()]
g, e = statistics.median(generated), statistics.median(emulated)
print(f"battle-service arm64, generated Dockerfile: median {g:.1f}s of {generated}")
print(f"battle-service arm64, naive emulated Dockerfile: median {e:.1f}s of {emulated}")
print(f"ratio naive/generated: {e / g:.2f}x")
PY
