# Shared set-up of the release benchmarks (sourced, with the benchmark's own arguments): a
# fresh loopback registry to release into, the base-image mirror (the first argument, or one
# started and seeded here), a work directory removed on exit, and timing helpers. Sets repo,
# work, xtask, registry, mirror; defines now and elapsed.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
repo=$(pwd)
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cargo build -q -p xtask
xtask=$repo/target/debug/xtask
port=$(free_port)
registry=$("$xtask" local-registry start --port "$port" --dir "$work/registry")
cleanup() { "$xtask" local-registry stop --port "$port" --dir "$work/registry" >/dev/null 2>&1 || true; [ -n "${mirror_port:-}" ] && "$xtask" local-registry stop --port "$mirror_port" --dir "$work/mirror" >/dev/null 2>&1; rm -rf "$work"; }
trap cleanup EXIT
if [ $# -ge 1 ]; then mirror=$1; else
  mirror_port=$(free_port); mirror=$("$xtask" local-registry start --port "$mirror_port" --dir "$work/mirror")
  scripts/seed-base-images.sh "$mirror" >/dev/null
fi
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.1f}')"; }
