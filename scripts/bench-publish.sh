#!/usr/bin/env bash
# Publish benchmark: registry requests (from the registry's own access log) and bytes uploaded
# (through a counting proxy) to publish all 12 refs of one service, measured in one run:
#   tool:  `cargo xtask build --push` of the multi-arch image (content), then
#          `cargo xtask publish` (12 tags registry-side);
#   guide: the team guide's sequence: per-arch builds, `docker tag` + `docker push` of 8 per-arch
#          tags, `docker manifest create` + `docker manifest push` of 4 lists (with
#          --provenance=false, since the guide's sequence fails otherwise).
# Twice: battle-service as it is, and a 10-layer image, where the gap grows.
# Usage: scripts/bench-publish.sh [MIRROR_HOST:PORT]  (a seeded base-image registry; default:
#        one started and seeded here). Each measured registry is a fresh one.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

if [ $# -ge 1 ]; then
  mirror=$1
else
  mirror_port=$(free_port)
  mirror=$(cargo xtask local-registry start --port "$mirror_port" --dir "$work/mirror")
  pids+=("$(cat "$work/mirror/pid")")
  scripts/seed-base-images.sh "$mirror" >/dev/null
fi
cargo build -q -p xtask
xtask=target/debug/xtask

# Each way of publishing gets its own fresh registry, behind its own counting proxy, so
# neither benefits from blobs the other uploaded (cross-repository mounts).
# Sets $target (what clients push to), $log and $bytes.
fresh_registry() { # <name>
  local port proxy
  port=$(free_port); proxy=$(free_port)
  cargo xtask local-registry start --port "$port" --dir "$work/$1" >/dev/null
  pids+=("$(cat "$work/$1/pid")")
  python3 scripts/lib/count_proxy.py "$proxy" "$port" "$work/$1/bytes" &
  pids+=($!)
  sleep 0.5
  target=127.0.0.1:$proxy log=$work/$1/registry.log bytes=$work/$1/bytes
}

# Requests (the registry's access log) and uploaded bytes (the proxy) of one phase.
measure() { # <label> <command...>
  local label=$1; shift
  local requests_before bytes_before
  requests_before=$(grep -c '"[A-Z]* /v2/' "$log" || true)
  sleep 0.3; bytes_before=$(cat "$bytes")
  "$@" >/dev/null 2>"$work/last.err" || { cat "$work/last.err" >&2; exit 1; }
  sleep 0.5
  local requests_after bytes_after
  requests_after=$(grep -c '"[A-Z]* /v2/' "$log" || true)
  bytes_after=$(cat "$bytes")
  echo "$label $((requests_after - requests_before)) $((bytes_after - bytes_before))" >> "$work/results"
}

tool_publish() { # <org> <context> <dockerfile>
  local org=$1 context=$2 dockerfile=$3 repository=$target/$1/battle-service
  measure "$org tool-content" docker buildx build --network host --platform linux/amd64,linux/arm64 \
    --build-context "node:20-alpine=docker-image://$mirror/library/node:20-alpine" \
    --build-context "busybox:1.36=docker-image://$mirror/library/busybox:1.36" \
    --file "$dockerfile" --tag "$repository:build-1" --push "$context"
  measure "$org tool-tags" "$xtask" publish --service battle-service --registry "$target" --organization "$org" \
    --version v3.0.0 --from build-1
}

guide_publish() { # <org> <context> <dockerfile>
  local org=$1 context=$2 dockerfile=$3 image=$target/$1/battle-service
  for arch in amd64 arm64; do
    docker buildx build --quiet --network host --provenance=false --platform "linux/$arch" --load \
      --build-context "node:20-alpine=docker-image://$mirror/library/node:20-alpine" \
      --build-context "busybox:1.36=docker-image://$mirror/library/busybox:1.36" \
      --file "$dockerfile" --tag "$image:v3.0.0-$arch" "$context" >/dev/null
    for tag in v3.0 v3 latest; do docker tag "$image:v3.0.0-$arch" "$image:$tag-$arch"; done
  done
  guide_pushes() {
    for arch in amd64 arm64; do for tag in v3.0.0 v3.0 v3 latest; do docker push --quiet "$image:$tag-$arch"; done; done
    for tag in v3.0.0 v3.0 v3 latest; do
      docker manifest create --insecure "$image:$tag" "$image:$tag-amd64" "$image:$tag-arm64"
      docker manifest push --insecure "$image:$tag"
    done
  }
  measure "$org guide" guide_pushes
}

# A 10-layer image: ten COPY layers of distinct content on busybox, no RUN.
ten=$work/ten-layer
mkdir -p "$ten"
{ echo "FROM busybox:1.36"; for i in $(seq 1 10); do head -c 200000 /dev/urandom > "$ten/file$i"; echo "COPY file$i /data/file$i"; done; echo 'USER 1001:1001'; } > "$ten/Dockerfile"

fresh_registry tool; tool_publish bench-tool services/battle-service docker/battle-service.Dockerfile
fresh_registry guide; guide_publish bench-guide services/battle-service docker/battle-service.Dockerfile
fresh_registry tool10; tool_publish bench-tool10 "$ten" "$ten/Dockerfile"
fresh_registry guide10; guide_publish bench-guide10 "$ten" "$ten/Dockerfile"

python3 - "$work/results" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    label, phase, requests, uploaded = line.split()
    rows[(label, phase)] = (int(requests), int(uploaded))
def show(name, tool_org, guide_org):
    content, tags = rows[(tool_org, "tool-content")], rows[(tool_org, "tool-tags")]
    guide = rows[(guide_org, "guide")]
    total = (content[0] + tags[0], content[1] + tags[1])
    print(f"{name}:")
    print(f"  tool  content push (buildx, one multi-arch build): {content[0]:4d} requests {content[1]:>10,d} bytes up")
    print(f"  tool  12 tags registry-side (xtask publish):      {tags[0]:4d} requests {tags[1]:>10,d} bytes up  ({tags[0] / 12:.2f} per tag)")
    print(f"  tool  total:                                      {total[0]:4d} requests {total[1]:>10,d} bytes up")
    print(f"  guide total (8 docker push + 4 manifest push):    {guide[0]:4d} requests {guide[1]:>10,d} bytes up")
    print(f"  ratio guide/tool: {guide[0] / total[0]:.2f}x requests, {guide[1] / max(total[1], 1):.2f}x bytes")
show("battle-service (as generated)", "bench-tool", "bench-guide")
show("10-layer image", "bench-tool10", "bench-guide10")
PY
