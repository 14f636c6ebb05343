#!/bin/sh
# Build grctl_<version>_<arch>.deb with dpkg-buildpackage (debian/), offline: from a copy of the
# sources and the vendored files that packaging/vendor.sh fetched and vendor.lock pins. The same
# sources give the same .deb (SOURCE_DATE_EPOCH comes from debian/changelog).
#
#   packaging/vendor.sh                        (once, with network)
#   packaging/build-deb.sh [OUTPUT_DIR]        (default: dist/; needs no network)
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$SRC/dist}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null || {
    echo "build-deb: dpkg-dev and debhelper are needed (apt-get install dpkg-dev debhelper python3-venv)" >&2
    exit 2; }
"$SRC/packaging/vendor.sh" --check

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/grctl-deb.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
mkdir "$STAGE/grctl"
tar -C "$SRC" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist --exclude='*.egg-info' \
    --exclude=./.cache --exclude=__pycache__ --exclude=.pytest_cache --exclude=.ruff_cache \
    --exclude=.mypy_cache -cf - . | tar -C "$STAGE/grctl" -xf -
# a build from a clean environment: no virtualenv or user Python ahead of the system's
(cd "$STAGE/grctl" && env -u VIRTUAL_ENV -u PYTHONPATH -u PYTHONHOME PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    dpkg-buildpackage -b -us -uc >"$STAGE/build.log" 2>&1) || { tail -40 "$STAGE/build.log" >&2; exit 1; }
for deb in "$STAGE"/*.deb; do cp "$deb" "$OUT/"; echo "$OUT/$(basename "$deb")"; done
