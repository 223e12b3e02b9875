#!/usr/bin/env bash
# Seed a registry with stand-ins for every base image the generated Dockerfiles use, for
# linux/amd64 and linux/arm64, under the paths a pull-through mirror would serve them from
# (`node:20-alpine` -> HOST:PORT/library/node:20-alpine).
#
# No image registry is reachable from these machines, so the stand-ins are built here from
# Debian bookworm packages: they are NOT the official images. `node:*` is Debian's Node.js 18
# with npm on busybox; `busybox:*` is Debian's busybox-static. Both are enough to build and run
# this repository's services, which is all the tests need.
#
# Usage: scripts/seed-base-images.sh HOST:PORT
# Idempotent: downloaded packages are cached in $SEED_CACHE (default ~/.cache/xtask-seed), and
# an image already present in the registry is not built again (SEED_FORCE=1 rebuilds).
set -euo pipefail

mirror=${1:?usage: scripts/seed-base-images.sh HOST:PORT}
repo_root=$(cd "$(dirname "$0")/.." && pwd)
cache=${SEED_CACHE:-$HOME/.cache/xtask-seed}
mkdir -p "$cache"
log() { printf '==> %s\n' "$*" >&2; }

# Every base image named in a FROM line of the committed Dockerfiles (stage names excluded).
bases() {
  awk '
    toupper($1) == "FROM" {
      for (i = 2; i <= NF; i++) if ($i !~ /^--/) { ref = $i; break }
      for (j = i + 1; j <= NF; j++) if (toupper($j) == "AS") stages[tolower($(j + 1))] = 1
      refs[ref] = 1
    }
    END { for (r in refs) if (!(tolower(r) in stages) && r != "scratch") print r }
  ' "$repo_root"/docker/*.Dockerfile | sort -u
}

# Download the dependency closure of some Debian packages for one architecture, ignoring what
# this machine has installed (an empty dpkg status), into $cache/debs/<arch>/<set>.
download_closure() { # <arch> <set> <packages...>
  local arch=$1 set=$2; shift 2
  local dir="$cache/debs/$arch/$set"
  [ -f "$dir/.done" ] && return 0
  mkdir -p "$dir/partial"
  : > "$cache/empty-status"
  log "downloading $* for $arch"
  apt-get install -y -qq --download-only --no-install-recommends \
    -o Dir::State::status="$cache/empty-status" -o Dir::Cache::archives="$dir" \
    -o APT::Architecture="$arch" -o APT::Architectures::="$arch" -o APT::Architectures::=all \
    -o APT::Default-Release=bookworm -o APT::Sandbox::User=root "$@" >/dev/null
  touch "$dir/.done"
}

# Unpack a package set into a root folder, give it a shell (busybox applets), a passwd with the
# services' uid 1001, and tar it.
make_rootfs_tar() { # <arch> <set> <out.tar> <skip-glob-regex>
  local arch=$1 set=$2 out=$3 skip=${4:-'^$'}
  local root; root=$(mktemp -d)
  for deb in "$cache/debs/$arch/$set"/*.deb; do
    basename "$deb" | grep -Eq "$skip" && continue
    dpkg-deb -x "$deb" "$root"
  done
  # The applet list is the same for both arches: ask the amd64 binary.
  local list_bin="$cache/busybox-amd64"
  if [ ! -x "$list_bin" ]; then
    local tmp; tmp=$(mktemp -d)
    dpkg-deb -x "$cache/debs/amd64/$set"/busybox-static_*.deb "$tmp"
    cp "$tmp/bin/busybox" "$list_bin"; rm -rf "$tmp"
  fi
  for applet in $("$list_bin" --list); do
    [ -e "$root/bin/$applet" ] || [ -e "$root/usr/bin/$applet" ] || [ -e "$root/sbin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  # Shebangs say /usr/bin/env (npm's does); coreutils is not in the image, busybox's env is.
  mkdir -p "$root/usr/bin"; [ -e "$root/usr/bin/env" ] || ln -s /bin/busybox "$root/usr/bin/env"
  mkdir -p "$root/etc" "$root/root" "$root/home/app" "$root/tmp"
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1001:1001:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\napp:x:1001:\nnogroup:x:65534:\n' > "$root/etc/group"
  chown 1001:1001 "$root/home/app"
  tar -C "$root" -cf "$out" .
  rm -rf "$root"
}

build_and_push() { # <context dir> <target ref>
  local context=$1 ref=$2
  cat > "$context/Dockerfile" <<'DOCKERFILE'
FROM scratch
ARG TARGETARCH
ADD rootfs-${TARGETARCH}.tar /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["sh"]
DOCKERFILE
  log "building and pushing $ref (linux/amd64, linux/arm64)"
  docker buildx build --quiet --provenance=false --platform linux/amd64,linux/arm64 \
    --tag "$ref" --push "$context" >/dev/null
}

exists_in_registry() { # <mirror> <path> <tag>
  curl -fsI -o /dev/null --max-time 10 \
    -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json' \
    "http://$1/v2/$2/manifests/$3"
}

for base in $(bases); do
  name=${base%%[:@]*}
  tag=${base#"$name"}; tag=${tag#:}; tag=${tag%%@*}
  case "$name" in */*) path=$name ;; *) path=library/$name ;; esac
  ref="$mirror/$path:$tag"
  if [ "${SEED_FORCE:-0}" != 1 ] && exists_in_registry "$mirror" "$path" "$tag"; then
    log "$ref already seeded"; continue
  fi
  context=$(mktemp -d)
  case "$path" in
    library/node)
      for arch in amd64 arm64; do
        download_closure "$arch" node nodejs npm busybox-static ca-certificates
        # Python, headers and compilers come with node-gyp's dependencies; npm ci of pure
        # JavaScript never needs them, and they double the image.
        make_rootfs_tar "$arch" node "$context/rootfs-$arch.tar" '^(python3|libpython|.*-dev_|gcc-|cpp|perl|libperl|dpkg_|debconf)'
      done ;;
    library/busybox)
      for arch in amd64 arm64; do
        download_closure "$arch" busybox busybox-static
        make_rootfs_tar "$arch" busybox "$context/rootfs-$arch.tar"
      done ;;
    *) echo "error: no stand-in recipe for base image '$base' (from docker/*.Dockerfile); add one to $0" >&2; exit 1 ;;
  esac
  build_and_push "$context" "$ref"
  rm -rf "$context"
done
log "seeded: $(bases | tr '\n' ' ')"
