#!/usr/bin/env bash
# Start or stop a loopback OCI registry (CNCF distribution, `docker-registry` from Debian) for
# trying the tool out and for the end-to-end tests. Deletes are enabled (cleanup needs them);
# every request is in its access log.
#
# Usage: scripts/local-registry.sh start [PORT]   prints 127.0.0.1:PORT once it answers
#        scripts/local-registry.sh stop [PORT]
# Data, config, pid and log live in $XTASK_REGISTRY_DIR (default target/registry-PORT).
# Starting one that already answers on PORT reuses it.
set -euo pipefail

action=${1:?usage: scripts/local-registry.sh start|stop [PORT]}
port=${2:-5000}
repo_root=$(cd "$(dirname "$0")/.." && pwd)
dir=${XTASK_REGISTRY_DIR:-$repo_root/target/registry-$port}
address=127.0.0.1:$port

answers() { curl -fs -o /dev/null "http://$address/v2/"; }

case "$action" in
  start)
    if answers; then echo "$address"; exit 0; fi
    command -v docker-registry >/dev/null || { echo "error: docker-registry is not installed: run scripts/provision.sh (or apt-get install docker-registry)" >&2; exit 1; }
    mkdir -p "$dir/data"
    cat > "$dir/config.yml" <<CONFIG
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $address
CONFIG
    nohup docker-registry serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 &
    echo $! > "$dir/pid"
    for _ in $(seq 1 50); do answers && { echo "$address"; exit 0; }; sleep 0.1; done
    echo "error: the registry did not answer on $address; see $dir/registry.log" >&2
    tail -5 "$dir/registry.log" >&2
    exit 1 ;;
  stop)
    if [ -f "$dir/pid" ]; then kill "$(cat "$dir/pid")" 2>/dev/null || true; rm -f "$dir/pid"; fi ;;
  *) echo "usage: scripts/local-registry.sh start|stop [PORT]" >&2; exit 2 ;;
esac
