#!/bin/sh
# The vendor step: make packaging/vendor/ hold exactly the files pinned in packaging/vendor.lock, each
# with its hash (the only step of a package build that uses the network). A file there that the lock
# does not pin (an older version after a lock update, a wheel dropped in by hand) is removed, so the
# builds and the source archives only ever see pinned files. Files already present with the right
# hash are not fetched again. Hidden files (.gitignore) are left alone.
#
#   packaging/vendor.sh [DIR]                  fetch what is missing, remove what is not pinned
#   packaging/vendor.sh --check [DIR]          only verify: every pinned file and nothing else
#   packaging/vendor.sh --requirements         the pins that are installed (the lock without its
#                                              build-only tools), for pip install --require-hashes
#   PYTHON=/usr/bin/python3.11 packaging/vendor.sh
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
MODE=fetch
case ${1:-} in
    --check) MODE=check; shift ;;
    --requirements) MODE=requirements; shift ;;
esac
DIR=${1:-$SRC/packaging/vendor}
LOCK=$SRC/packaging/vendor.lock
PYTHON=${PYTHON:-/usr/bin/python3}

if [ "$MODE" = requirements ]; then
    # "# build-only: NAME..." lists the pins that only build (grctl's wheel, nkeys); not installed
    build_only=$(sed -n 's/^# build-only: *//p' "$LOCK")
    grep -v '^#' "$LOCK" | grep . | while IFS= read -r line; do
        case " $build_only " in *" ${line%%==*} "*) ;; *) printf '%s\n' "$line" ;; esac
    done
    exit 0
fi

PINS=$(sed -n 's/^[^#]*--hash=sha256:\([0-9a-f]\{64\}\).*/\1/p' "$LOCK")
PINSET=" $(echo $PINS) "
# scan: MISSING, the pins no file of DIR has (as NAME==VERSION); EXTRA, the entries of DIR that are
# not a pinned file (a file of another hash, a directory)
scan() {
    have=$(find "$DIR" -mindepth 1 -maxdepth 1 ! -name '.*' | sort | while IFS= read -r path; do
        if [ -f "$path" ]; then sum=$(sha256sum < "$path" | cut -c1-64); else sum=-; fi
        printf '%s %s\n' "$sum" "${path##*/}"
    done)
    MISSING=$(for pin in $PINS; do
        printf '%s\n' "$have" | grep -q "^$pin " || sed -n "s/^\([^ ]*\) .*--hash=sha256:$pin.*/\1/p" "$LOCK"
    done)
    EXTRA=$(printf '%s\n' "$have" | while read -r sum name; do
        [ -n "$sum" ] || continue
        case $PINSET in *" $sum "*) ;; *) printf '%s\n' "$name" ;; esac
    done)
}

mkdir -p "$DIR"
scan
if [ "$MODE" = check ]; then
    [ -z "$MISSING" ] || echo "vendor: $DIR lacks pinned files (run packaging/vendor.sh):" $MISSING >&2
    [ -z "$EXTRA" ] || echo "vendor: $DIR holds files vendor.lock does not pin (run packaging/vendor.sh):" $EXTRA >&2
    [ -z "$MISSING$EXTRA" ]
    exit
fi
printf '%s\n' "$EXTRA" | while IFS= read -r name; do
    if [ -n "$name" ] && [ ! -f "$DIR/$name" ]; then echo "vendor: $DIR/$name is not a file: remove it" >&2; exit 1; fi
done
printf '%s\n' "$EXTRA" | while IFS= read -r name; do
    [ -n "$name" ] || continue
    echo "vendor: removing $name (not pinned in vendor.lock)" >&2
    rm -f "$DIR/$name"
done
if [ -n "$MISSING" ]; then
    TOOL=$(mktemp -d "${TMPDIR:-/tmp}/grctl-vendor.XXXXXX")
    trap 'rm -rf "$TOOL"' EXIT
    "$PYTHON" -m venv "$TOOL/venv"
    "$TOOL/venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --require-hashes \
        -r "$LOCK" -d "$DIR"
fi
scan
if [ -n "$MISSING$EXTRA" ]; then echo "vendor: after download, missing:" $MISSING "not pinned:" $EXTRA >&2; exit 1; fi
