#!/bin/sh
# The two archives both source packages are made of (the Debian source package's orig tarball and
# its "vendor" component; the RPM's Source0 and Source1), reproducibly: files in name order, owned
# by root, dated SOURCE_DATE_EPOCH, gzip without a name or date.
#
#   SOURCES  the project under TOPDIR/, without debian/ (the Debian source package carries it in
#            its own archive), packaging/vendor and what is not source (.git, virtual environments,
#            build output, caches)
#   VENDOR   the files of packaging/vendor, which must be exactly the ones vendor.lock pins (see
#            vendor.sh --check), under vendor/: make-tree.sh reads them from there (GRCTL_VENDOR)
#
#   SOURCE_DATE_EPOCH=... packaging/source-archives.sh TOPDIR SOURCES.tar.gz VENDOR.tar.gz
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
TOPDIR=$1 SOURCES=$2 VENDOR=$3
: "${SOURCE_DATE_EPOCH:?SOURCE_DATE_EPOCH must be set (the date of the archives' files)}"
"$SRC/packaging/vendor.sh" --check

archive() {  # archive OUTPUT TOPDIR DIR [tar options...]: OUTPUT, DIR's content under TOPDIR/
    output=$1 top=$2 dir=$3; shift 3
    tar -C "$dir" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
        --transform "s|^\./*|$top/|" "$@" -cf - . | gzip -9n > "$output"
}
archive "$SOURCES" "$TOPDIR" "$SRC" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist \
    --exclude='*.egg-info' --exclude=./.cache --exclude=./debian --exclude=./packaging/vendor \
    --exclude=__pycache__ --exclude=.pytest_cache --exclude=.ruff_cache --exclude=.mypy_cache
archive "$VENDOR" vendor "$SRC/packaging/vendor" --exclude='./.*'
