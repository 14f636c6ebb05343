#!/bin/sh
# Build the RPM source package grctl-<version>-<release>.src.rpm and the binary package
# grctl-<version>-<release>.<arch>.rpm with rpmbuild -ba from packaging/rpm/grctl.spec, offline:
# Source0 is an archive of the sources, Source1 one of the vendored files that packaging/vendor.sh
# fetched and vendor.lock pins (the same two archives as the Debian source package's, see
# source-archives.sh), made reproducibly (file order, owners, dates).
#
#   packaging/vendor.sh                        (once, with network)
#   packaging/build-rpm.sh [OUTPUT_DIR]        (default: dist/; needs no network)
#
# The paths of the .src.rpm and the .rpm are printed, the .rpm last. The vendored wheels are for
# CPython 3.11: %{__python3} (python3 by default) must be 3.11.
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$SRC/dist}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
command -v rpmbuild >/dev/null || { echo "build-rpm: rpmbuild is needed (apt-get install rpm, or dnf install rpm-build)" >&2; exit 2; }
SPEC=$SRC/packaging/rpm/grctl.spec
VERSION=$(sed -n 's/^Version: *//p' "$SPEC")
# the archives' dates: the newest changelog entry, as rpmbuild takes it for SOURCE_DATE_EPOCH
SOURCE_DATE_EPOCH=$(date -d "$(sed -n '/^%changelog/{n;s/^\* \([A-Za-z]* [A-Za-z]* [0-9]* [0-9]*\).*/\1/p;q}' "$SPEC")" +%s)
export SOURCE_DATE_EPOCH

TOP=$(mktemp -d "${TMPDIR:-/tmp}/grctl-rpm.XXXXXX")
trap 'rm -rf "$TOP"' EXIT
mkdir -p "$TOP/SOURCES"
"$SRC/packaging/source-archives.sh" "grctl-$VERSION" "$TOP/SOURCES/grctl-$VERSION.tar.gz" \
    "$TOP/SOURCES/grctl-vendor-$VERSION.tar.gz"
# on a host whose packages rpm does not know (Debian), the build requirements cannot be checked
rpm -q --whatprovides python3 >/dev/null 2>&1 || NODEPS=--nodeps
env -u VIRTUAL_ENV -u PYTHONPATH -u PYTHONHOME PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    rpmbuild -ba ${NODEPS:-} --define "_topdir $TOP" "$SPEC" >"$TOP/build.log" 2>&1 || { tail -40 "$TOP/build.log" >&2; exit 1; }
for rpm in "$TOP"/SRPMS/*.src.rpm "$TOP"/RPMS/*/*.rpm; do cp "$rpm" "$OUT/"; echo "$OUT/$(basename "$rpm")"; done
