#!/bin/sh
# The vendor step: fetch the files pinned in packaging/vendor.lock into packaging/vendor/ (the only
# step of a package build that uses the network), or, with --check, only verify that every pinned
# file is there with its hash. Files already present with the right hash are not fetched again.
#
#   packaging/vendor.sh [--check] [DIR]        (default DIR: packaging/vendor)
#   PYTHON=/usr/bin/python3.11 packaging/vendor.sh
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
CHECK=
if [ "${1:-}" = "--check" ]; then CHECK=1; shift; fi
DIR=${1:-$SRC/packaging/vendor}
LOCK=$SRC/packaging/vendor.lock
PYTHON=${PYTHON:-/usr/bin/python3}

# missing: the pinned hashes with no file of that hash in DIR (prints nothing when all are there)
missing() {
    mkdir -p "$DIR"
    (cd "$DIR" && find . -maxdepth 1 -type f \( -name '*.whl' -o -name '*.tar.gz' \) -exec sha256sum {} +) \
        | cut -d' ' -f1 | sort > "$DIR/.present"
    sed -n 's/.*--hash=sha256:\([0-9a-f]*\).*/\1/p' "$LOCK" | sort | comm -23 - "$DIR/.present"
    rm -f "$DIR/.present"
}

if [ -z "$(missing)" ]; then exit 0; fi
if [ -n "$CHECK" ]; then
    echo "vendor: $DIR lacks pinned files (run packaging/vendor.sh): $(missing | tr '\n' ' ')" >&2
    exit 1
fi
TOOL=$(mktemp -d "${TMPDIR:-/tmp}/grctl-vendor.XXXXXX")
trap 'rm -rf "$TOOL"' EXIT
"$PYTHON" -m venv "$TOOL/venv"
"$TOOL/venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --require-hashes \
    -r "$LOCK" -d "$DIR"
if [ -n "$(missing)" ]; then echo "vendor: still missing after download: $(missing)" >&2; exit 1; fi
