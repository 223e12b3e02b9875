#!/usr/bin/env bash
# The release's build/check/SBOM pipeline, measured in one run: the same release of the seven
# services (SBOMs on, each into its own fresh organization, build cache warm) with --jobs 1
# (every task one after the other: the baseline without overlap), the default (the machine's
# cores, at most 4) and --jobs 8 (more than the cores). Prints each wall time, the tool's own
# "work vs wall" line, and the ratios against --jobs 1.
# Usage: scripts/bench-pipeline.sh [MIRROR_HOST:PORT]
source "$(dirname "$0")/lib/release-bench.sh"

release() { # <name> <args...>: a fresh clone released into its own organization; prints the wall time
  local name=$1; shift
  git clone --quiet "$repo" "$work/$name"
  git -C "$work/$name" config user.email bench@example.com; git -C "$work/$name" config user.name Bench
  local start; start=$(now)
  XTASK_ROOT=$work/$name "$xtask" release --bump minor --registry "$registry" --organization "bench-$name" \
    --base-mirror "$mirror" --network host --yes "$@" >"$work/$name.out" 2>"$work/$name.err" \
    || { tail -20 "$work/$name.err" >&2; return 1; }
  elapsed "$start" "$(now)"
}

release warmup --jobs 4 >/dev/null # fills the build cache, so every measured run builds alike
one=$(release one --jobs 1)
default=$(release default)
eight=$(release eight --jobs 8)
echo "cores: $(nproc)"
for name in one default eight; do
  echo "  $name: $(grep 'builds, checks and SBOMs' "$work/$name.err")"
done
echo "release of 7 services with 14 SBOMs: --jobs 1 ${one}s, default ${default}s, --jobs 8 ${eight}s"
python3 -c "print(f'ratio against --jobs 1: default {$one / $default:.2f}x, --jobs 8 {$one / $eight:.2f}x')"
