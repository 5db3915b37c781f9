#!/usr/bin/env bash
# Build the metacni node image offline:  conf/build-image.sh TAG [extra `podman build` args]
#
# 1. The base: a Debian bookworm minbase rootfs from the Debian archive (mmdebstrap, ~40 s),
#    cached as a tarball in $METACNI_IMAGE_CACHE (default /var/cache/metacni-image) and
#    `podman import`ed as localhost/metacni-base:bookworm-<key> unless that image exists.
# 2. The context: the project and its dependencies as wheels built on the host (`pip wheel`;
#    containers cannot reach this machine's package index) and the shim's C sources.
# 3. `podman build --jobs 2 --network host` of conf/Containerfile: its two stages in parallel,
#    apt-get in them through the host's network to the Debian archive.
# podman's own settings come from the environment (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF):
# see docs/operations.md for the containers.conf these machines need. Scratch (the build
# context, mmdebstrap's and pip's) goes to $TMPDIR. Some writes have no knob (the blob-info
# cache in /var/lib/containers, runc's /run/runc): e2e/nodehost.py runs this script in a
# mount namespace where those are the test's scratch.
set -euo pipefail
tag=${1:?usage: conf/build-image.sh TAG [podman build args...]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${METACNI_IMAGE_CACHE:-/var/cache/metacni-image}
python=${PYTHON:-python3}
suite=bookworm
include=python3,ca-certificates
key=$(printf '%s\n' "$suite" minbase "$include" | sha256sum | cut -c1-12)
base=localhost/metacni-base:$suite-$key

if ! podman image exists "$base"; then
  mkdir -p "$cache"
  tarball=$cache/base-$suite-$key.tar
  if [ ! -s "$tarball" ]; then
    echo "build-image: bootstrapping $suite into $tarball" >&2
    mmdebstrap --quiet --format=tar --variant=minbase --include="$include" "$suite" "$tarball.$$.tmp"
    mv -f "$tarball.$$.tmp" "$tarball"
  fi
  echo "build-image: podman import $tarball $base" >&2
  podman import --quiet "$tarball" "$base" >/dev/null
fi

ctx=$(mktemp -d "${TMPDIR:-/tmp}/metacni-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
echo "build-image: pip wheel -w $ctx/wheels $root" >&2
"$python" -m pip wheel -q --disable-pip-version-check -w "$ctx/wheels" "$root"
mkdir "$ctx/shim"
cp "$root"/shim/*.c "$root"/shim/Makefile "$ctx/shim/"
echo "build-image: podman build -t $tag (base $base)" >&2
podman build --jobs 2 --network host --build-arg BASE="$base" -f "$root/conf/Containerfile" -t "$tag" "$@" "$ctx"
