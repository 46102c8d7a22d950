#!/usr/bin/env bash
# Builds, scans and (optionally) pushes the container images of CloudRetail's apps.
#
#   tools/build-images/build-images.sh [options] [app...]
#
# Without app names it builds the apps Nx reports as affected (`nx show projects --affected
# --type app`) that have a Dockerfile; --all builds every app with a Dockerfile.
#
#   --all              every app with apps/<app>/Dockerfile
#   --push             push each image after the scan gate passed (default: load into the engine)
#   --no-scan          do not scan; every image is reported as NOT SCANNED (for machines without
#                      a vulnerability database; never the default)
#   --offline          build FROM the local base images of tools/containers/base-images.sh
#                      (built first when missing) instead of the public node/debian images
#   --digests FILE     write {"<app>": "<registry>/<app>@sha256:…"} of what was pushed
#   --tag TAG          image tag (default: the version below)
#   --registry NAME    image prefix (default: $REGISTRY or ghcr.io/cloudretail)
#   --base REF         base for affected detection (default: $NX_BASE or origin/main)
#   --dry-run          print the commands instead of running them (also DRY_RUN=1)
#   --print-version    print the version tag and exit
#
# Version: <git describe --tags --always --dirty>-<short sha>, e.g. v1.4.0-3-gabc1234 or
# v1.4.0-abc1234 on a tag. No `latest`: deployments pin digests. The scan is Trivy's; a fixable
# HIGH or CRITICAL finding fails the gate (tools/build-images/scan-gate.mjs) and nothing of that
# image is pushed. Builds use `docker buildx build --load` when buildx is there (a
# docker-container builder keeps nothing in the engine otherwise), plain BuildKit otherwise;
# $DOCKER names the client (default: docker).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

registry="${REGISTRY:-ghcr.io/cloudretail}"
base="${NX_BASE:-origin/main}"
docker="${DOCKER:-docker}"
all=false
push=false
scan=true
offline=false
dry_run=false
case "${DRY_RUN:-}" in 1|true) dry_run=true ;; esac
digests=""
tag=""
print_version=false
apps=()

usage() { sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --all) all=true ;;
    --push) push=true ;;
    --load) push=false ;;
    --no-scan) scan=false ;;
    --offline) offline=true ;;
    --dry-run) dry_run=true ;;
    --digests) digests="${2:?--digests needs a file}"; shift ;;
    --tag) tag="${2:?--tag needs a value}"; shift ;;
    --registry) registry="${2:?--registry needs a value}"; shift ;;
    --base) base="${2:?--base needs a value}"; shift ;;
    --print-version) print_version=true ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "build-images: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) apps+=("$1") ;;
  esac
  shift
done

version="$(git describe --tags --always --dirty)"
sha="$(git rev-parse --short HEAD)"
# describe already ends in the short sha when HEAD is not a tag (v1.2.0-3-gabc1234) or no tag
# exists (abc1234); append it only when it is missing, so the tag stays traceable to a commit.
case "$version" in
  *"$sha"*) ;;
  *) version="$version-$sha" ;;
esac
if [ "$print_version" = true ]; then
  echo "$version"
  exit 0
fi
tag="${tag:-$version}"

# Runs a command, or prints it (shell-quoted) in --dry-run.
run() {
  if [ "$dry_run" = true ]; then
    printf '%q ' "$@"
    printf '\n'
  else
    "$@"
  fi
}
say() { echo "build-images: $*"; }
fail() { echo "build-images: $*" >&2; exit 1; }

deployable() { [ -f "apps/$1/Dockerfile" ]; }

if [ ${#apps[@]} -eq 0 ]; then
  if [ "$all" = true ]; then
    for dockerfile in apps/*/Dockerfile; do
      app="${dockerfile#apps/}"
      apps+=("${app%/Dockerfile}")
    done
  else
    while IFS= read -r app; do
      [ -n "$app" ] && deployable "$app" && apps+=("$app")
    done < <(npx nx show projects --affected --type app --base="$base" --head=HEAD)
  fi
fi

if [ ${#apps[@]} -eq 0 ]; then
  say "no affected app with a Dockerfile; nothing to build"
  [ -n "$digests" ] && echo '{}' >"$digests"
  exit 0
fi
for app in "${apps[@]}"; do
  deployable "$app" || fail "apps/$app/Dockerfile not found"
done

# An image from uncommitted changes cannot be traced to a commit: never publish one. A registry on
# this machine's loopback address publishes nothing, so it may take one (the container tests do).
case "$registry" in
  127.0.0.1:*|localhost:*) local_registry=true ;;
  *) local_registry=false ;;
esac
if [ "$push" = true ] && [ "$local_registry" = false ] && [ "${version%-dirty}" != "$version" ]; then
  if [ "$dry_run" = true ]; then
    echo "build-images: warning: the work tree is dirty; a real --push would refuse" >&2
  else
    fail "refusing to push from a dirty work tree ($version)"
  fi
fi
if [ "$scan" = true ] && [ "$dry_run" = false ] && ! command -v trivy >/dev/null; then
  fail "trivy is not installed: install it, or pass --no-scan to build without scanning (reported as NOT SCANNED)"
fi

build_args=()
if [ "$offline" = true ]; then
  run tools/containers/base-images.sh
  eval "$(tools/containers/base-images.sh --print-env)"
fi
[ -n "${NODE_IMAGE:-}" ] && build_args+=(--build-arg "NODE_IMAGE=$NODE_IMAGE")
[ -n "${DEBIAN_IMAGE:-}" ] && build_args+=(--build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE")

if [ "$dry_run" = false ] && "$docker" buildx version >/dev/null 2>&1; then
  build=("$docker" buildx build --load)
else
  build=(env DOCKER_BUILDKIT=1 "$docker" build)
fi

created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
revision="$(git rev-parse HEAD)"
reports="$(mktemp -d)"
trap 'rm -rf "$reports"' EXIT
say "${apps[*]} as ${registry}/<app>:${tag}$([ "$push" = true ] && echo ', pushed by digest')"

declare -A pushed=()
count=0
for app in "${apps[@]}"; do
  count=$((count + 1))
  image="${registry}/${app}:${tag}"
  say "[$count/${#apps[@]}] building $image"
  log="$reports/$app.build.log"
  if [ "$dry_run" = true ]; then
    run "${build[@]}" --file "apps/${app}/Dockerfile" --target runtime "${build_args[@]}" \
      --build-arg "VERSION=${tag}" --build-arg "REVISION=${revision}" --build-arg "CREATED=${created}" --tag "$image" .
  elif ! "${build[@]}" --progress=plain --file "apps/${app}/Dockerfile" --target runtime "${build_args[@]}" \
      --build-arg "VERSION=${tag}" --build-arg "REVISION=${revision}" --build-arg "CREATED=${created}" \
      --tag "$image" . >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    fail "building $image failed (last lines above)"
  fi

  if [ "$scan" = true ]; then
    report="$reports/$app.trivy.json"
    run trivy image --quiet --format json --output "$report" "$image"
    # The gate: fixable HIGH/CRITICAL findings fail the build before anything is pushed.
    [ "$dry_run" = true ] || node tools/build-images/scan-gate.mjs --image "$image" "$report" || fail "$image did not pass the scan gate; not pushed"
  else
    say "WARNING: $image NOT SCANNED (--no-scan)"
  fi

  if [ "$push" = true ]; then
    if [ "$dry_run" = true ]; then
      run "$docker" push "$image"
      pushed[$app]="${registry}/${app}@sha256:$(printf '0%.0s' $(seq 1 64))"
    else
      "$docker" push "$image" >"$log" 2>&1 || { tail -n 20 "$log" >&2; fail "pushing $image failed"; }
      ref="$("$docker" image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$image" | grep -m1 "^${registry}/${app}@sha256:" || true)"
      [ -n "$ref" ] || fail "pushed $image but the engine knows no digest for it in $registry"
      pushed[$app]="$ref"
      say "pushed $ref"
    fi
  fi
done

if [ -n "$digests" ]; then
  {
    echo '{'
    n=0
    for app in "${apps[@]}"; do
      [ -n "${pushed[$app]:-}" ] || continue
      [ $n -gt 0 ] && echo ','
      printf '  "%s": "%s"' "$app" "${pushed[$app]}"
      n=$((n + 1))
    done
    printf '\n}\n'
  } >"$digests"
  say "digests written to $digests"
fi
