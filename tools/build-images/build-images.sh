#!/usr/bin/env bash
# Builds, scans and (optionally) pushes the container images of CloudRetail's apps.
#
#   tools/build-images/build-images.sh [options] [app...]
#
# Without app names it builds the apps Nx reports as affected (`nx show projects --affected
# --type app`) that have a Dockerfile; --all builds every app with a Dockerfile.
#
#   --all              every app with apps/<app>/Dockerfile
#   --push             push the tags after a clean scan
#   --dry-run          print the commands instead of running them
#   --registry NAME    image prefix (default: $REGISTRY or ghcr.io/cloudretail)
#   --base REF         base for affected detection (default: $NX_BASE or origin/main)
#   --print-version    print the version tag and exit
#
# Tag: <git describe --tags --always --dirty>-<short sha>, e.g. v1.4.0-3-gabc1234-abc1234 or
# v1.4.0-abc1234 on a tag. No `latest`: deployments pin exact tags. An image with a HIGH or
# CRITICAL vulnerability that has a fix fails the Trivy gate and is not pushed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

registry="${REGISTRY:-ghcr.io/cloudretail}"
base="${NX_BASE:-origin/main}"
all=false
push=false
dry_run=false
apps=()

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --all) all=true ;;
    --push) push=true ;;
    --dry-run) dry_run=true ;;
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
  *"$sha"*) tag="$version" ;;
  *) tag="$version-$sha" ;;
esac
if [ "${print_version:-false}" = true ]; then
  echo "$tag"
  exit 0
fi

# Runs a command, or prints it (shell-quoted) in --dry-run.
run() {
  if [ "$dry_run" = true ]; then
    printf '%q ' "$@"
    printf '\n'
  else
    "$@"
  fi
}

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
  echo "build-images: no affected app with a Dockerfile; nothing to build"
  exit 0
fi

if [ "$push" = true ] && [ "${tag%-dirty}" != "$tag" ]; then
  # An image from uncommitted changes cannot be traced to a commit: never publish one.
  if [ "$dry_run" = true ]; then
    echo "build-images: warning: the work tree is dirty; a real --push would refuse" >&2
  else
    echo "build-images: refusing to push from a dirty work tree ($tag)" >&2
    exit 1
  fi
fi

created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
revision="$(git rev-parse HEAD)"
echo "build-images: ${apps[*]} as ${registry}/<app>:${tag}"

for app in "${apps[@]}"; do
  if ! deployable "$app"; then
    echo "build-images: apps/$app/Dockerfile not found" >&2
    exit 1
  fi
  image="${registry}/${app}:${tag}"
  run docker build \
    --file "apps/${app}/Dockerfile" \
    --target runtime \
    --build-arg "VERSION=${tag}" \
    --build-arg "REVISION=${revision}" \
    --build-arg "CREATED=${created}" \
    --tag "$image" \
    .
  # The gate: fixable HIGH/CRITICAL findings fail the build before anything is pushed.
  run trivy image --exit-code 1 --severity HIGH,CRITICAL --ignore-unfixed --no-progress "$image"
  if [ "$push" = true ]; then
    run docker push "$image"
  fi
done
