#!/bin/sh
# Build the Debian source package and, from it, the binary package, offline, as a distribution's
# builder (sbuild) would: the source package is 3.0 (quilt), grctl_<upstream>.orig.tar.gz (the
# sources, without debian/) with the vendored files that packaging/vendor.sh fetched and vendor.lock
# pins as its "vendor" component (grctl_<upstream>.orig-vendor.tar.gz, unpacked into vendor/), and
# grctl_<version>.debian.tar.xz. It is made with dpkg-source -b, unpacked elsewhere with dpkg-source
# -x, and the .deb is built there with dpkg-buildpackage -b. The same sources give the same files
# (SOURCE_DATE_EPOCH comes from debian/changelog).
#
#   packaging/vendor.sh                        (once, with network)
#   packaging/build-deb.sh [OUTPUT_DIR]        (default: dist/; needs no network)
#
# OUTPUT_DIR receives the source package (.dsc, both orig tarballs, .debian.tar.xz and
# grctl_<version>_source.changes) and grctl_<version>_<arch>.deb; their paths are printed, the .deb
# last.
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$SRC/dist}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null || {
    echo "build-deb: dpkg-dev and debhelper are needed (apt-get install dpkg-dev debhelper python3-venv)" >&2
    exit 2; }
VERSION=$(dpkg-parsechangelog -l "$SRC/debian/changelog" -SVersion)
UPSTREAM=${VERSION%-*}
SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l "$SRC/debian/changelog" -STimestamp)
export SOURCE_DATE_EPOCH

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/grctl-deb.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
mkdir "$STAGE/source" "$STAGE/build"
# a build from a clean environment: no virtualenv or user Python ahead of the system's
clean() { env -u VIRTUAL_ENV -u PYTHONPATH -u PYTHONHOME PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
step() {  # step NAME COMMAND...: COMMAND with its output in the log, shown if it fails
    name=$1; shift
    "$@" >>"$STAGE/build.log" 2>&1 || { echo "build-deb: $name failed:" >&2; tail -40 "$STAGE/build.log" >&2; exit 1; }
}

# 1. the source package: the tree it describes is the two archives unpacked, plus debian/
ORIG=$STAGE/source/grctl_$UPSTREAM.orig.tar.gz
ORIG_VENDOR=$STAGE/source/grctl_$UPSTREAM.orig-vendor.tar.gz
"$SRC/packaging/source-archives.sh" "grctl-$UPSTREAM" "$ORIG" "$ORIG_VENDOR"
TREE=$STAGE/source/grctl-$UPSTREAM
mkdir -p "$TREE/vendor"
tar -C "$TREE" --strip-components=1 -xzf "$ORIG"
tar -C "$TREE/vendor" --strip-components=1 -xzf "$ORIG_VENDOR"
cp -R "$SRC/debian" "$TREE/debian"
(cd "$STAGE/source" && step "dpkg-source -b" clean dpkg-source -b "grctl-$UPSTREAM")
(cd "$TREE" && step "dpkg-genchanges -S" clean dpkg-genchanges -S -sa -O"../grctl_${VERSION}_source.changes")

# 2. the binary package, from the source package unpacked afresh
(cd "$STAGE/build" && step "dpkg-source -x" clean dpkg-source -x "$STAGE/source/grctl_$VERSION.dsc" "grctl-$UPSTREAM")
(cd "$STAGE/build/grctl-$UPSTREAM" && step dpkg-buildpackage clean dpkg-buildpackage -b -us -uc)

for file in "$STAGE/source/grctl_$VERSION.dsc" "$ORIG" "$ORIG_VENDOR" "$STAGE/source/grctl_$VERSION".debian.tar.* \
        "$STAGE/source/grctl_${VERSION}_source.changes" "$STAGE"/build/*.deb; do
    cp "$file" "$OUT/"
    echo "$OUT/$(basename "$file")"
done
