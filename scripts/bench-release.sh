#!/usr/bin/env bash
# Release benchmarks, measured in one run:
#  1. a release of the seven services where one changed (build avoidance) against the same
#     release with --rebuild (warm build cache) and with --rebuild --no-cache;
#  3. a no-op release attempt (its version already exists) against a full release: time to refuse;
#  4. the xtask itself: clean debug build time, warm start (`--help`), dependency count.
# (Benchmark 2, arm64 with the generated Dockerfile against a naive one, is bench-build.sh.)
# SBOMs are turned off in the benchmark's clones: syft's time is the same whichever way the
# images were made, and would only dilute the comparison.
# Usage: scripts/bench-release.sh [MIRROR_HOST:PORT]
source "$(dirname "$0")/lib/release-bench.sh"

clone() { # <dir>: this repository's commit, SBOMs off, ready to release
  git clone --quiet "$repo" "$1"
  git -C "$1" config user.email bench@example.com; git -C "$1" config user.name Bench
  sed -i 's/^sbom = true/sbom = false/' "$1/services/services.toml"
  git -C "$1" commit --quiet --all --message "bench: no SBOMs"
}
release() { # <dir> <org> <args...>: prints the wall time
  local dir=$1 org=$2; shift 2
  local start; start=$(now)
  XTASK_ROOT=$dir "$xtask" release --registry "$registry" --organization "$org" --base-mirror "$mirror" \
    --network host --yes "$@" >"$work/last.out" 2>"$work/last.err" || { tail -20 "$work/last.err" >&2; return 1; }
  elapsed "$start" "$(now)"
}
change_one() { # <dir>: one service changes, with a CHANGELOG entry
  sed -i 's/Loading battles/Loading the battles/' "$1/services/frontend/public/index.html"
  sed -i '0,/## \[Unreleased\]/s//## [Unreleased]\n\n### Fixed\n\n- The loading message./' "$1/CHANGELOG.md"
  git -C "$1" commit --quiet --all --message "frontend: loading message"
}

for way in avoid rebuild nocache; do
  clone "$work/$way"
  full=$(release "$work/$way" "bench-$way" --bump minor)
  change_one "$work/$way"
done
echo "full release of 7 services (v3.1.0): ${full}s"
avoid=$(release "$work/avoid" bench-avoid --bump patch)
rebuild=$(release "$work/rebuild" bench-rebuild --bump patch --rebuild)
nocache=$(release "$work/nocache" bench-nocache --bump patch --rebuild --no-cache)
echo "1. one of seven services changed: ${avoid}s with build avoidance (1 build, 6 reused)"
echo "   the same release with --rebuild: ${rebuild}s (warm build cache), ${nocache}s (--no-cache)"
python3 -c "print(f'   ratio: {$rebuild / $avoid:.2f}x (warm cache), {$nocache / $avoid:.2f}x (no cache)')"

clone "$work/noop"
start=$(now)
XTASK_ROOT=$work/noop "$xtask" release --registry "$registry" --organization bench-avoid --base-mirror "$mirror" \
  --network host --yes --bump minor >/dev/null 2>&1 && { echo "the no-op release was not refused" >&2; exit 1; }
refuse_ms=$(python3 -c "print(f'{($(now) - $start) * 1000:.0f}')")
echo "3. release of an existing version refused in ${refuse_ms} ms, against ${full}s for a full release"
python3 -c "print(f'   ratio: {$full * 1000 / max($refuse_ms, 1):.0f}x')"

target=$(mktemp -d)
start=$(now)
CARGO_TARGET_DIR=$target cargo build -q -p xtask
build=$(elapsed "$start" "$(now)")
runs=20; start=$(now)
for _ in $(seq $runs); do "$target/debug/xtask" --help >/dev/null; done
warm=$(python3 -c "print(f'{($(now) - $start) / $runs * 1000:.1f}')")
deps=$(cargo tree -p xtask -e normal,build --prefix none 2>/dev/null | sed 's/ (\*)//' | sort -u | wc -l)
rm -rf "$target"
echo "4. xtask: clean debug build ${build}s, warm start ${warm} ms (--help, mean of $runs), $((deps - 1)) dependency crates"
