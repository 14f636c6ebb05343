#!/usr/bin/env bash
# Build grctl_<version>_<arch>.deb with dpkg-deb: the daemon in its own virtual environment under
# /opt/grctl (built against the target's Python, /usr/bin/python3 by default), the systemd unit,
# sysusers/tmpfiles entries, /etc/default/grctld and /etc/grctl/grctl.yaml as conffiles, the grctld
# and grctl commands on PATH, and the example file of each role of a cluster (engine host, worker
# host, NATS node) with the deployment guide under /usr/share/doc/grctl.
#
#   packaging/build-deb.sh [OUTPUT_DIR]          (default: dist/)
#   PYTHON=/usr/bin/python3.11 packaging/build-deb.sh
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(mkdir -p "${1:-$SRC/dist}" && cd "${1:-$SRC/dist}" && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
PREFIX=/opt/grctl
PKG=$SRC/packaging

command -v dpkg-deb >/dev/null || { echo "build-deb: dpkg-deb is needed (apt-get install dpkg)" >&2; exit 2; }
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || {
    echo "build-deb: $PYTHON cannot make virtual environments (apt-get install python3-venv)" >&2; exit 2; }

VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$SRC/pyproject.toml" | head -1)
ARCH=$(dpkg --print-architecture)
PYVER=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
PYNEXT=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1] + 1}")')

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/grctl-deb.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
ROOT=$STAGE/root
mkdir -p "$ROOT"

# 1. the virtual environment, built where it will live (under the staging root), then relocated;
#    from a clean copy of the sources (a stale build/ directory must not leak into the package)
mkdir -p "$STAGE/src"
tar -C "$SRC" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist --exclude='*.egg-info' \
    --exclude=__pycache__ --exclude=.pytest_cache --exclude=.ruff_cache --exclude=.mypy_cache -cf - . \
    | tar -C "$STAGE/src" -xf -
"$PYTHON" -m venv "$ROOT$PREFIX"
"$ROOT$PREFIX/bin/python" -m pip install --quiet --disable-pip-version-check "$STAGE/src"
# scripts and activation files name the staging path: point them at the installed one
grep -rlI --null "$ROOT$PREFIX" "$ROOT$PREFIX/bin" "$ROOT$PREFIX/pyvenv.cfg" | xargs -0 -r sed -i "s|$ROOT$PREFIX|$PREFIX|g"
find "$ROOT$PREFIX" -name __pycache__ -type d -prune -exec rm -rf {} +   # the postinst compiles

# 2. system integration
install -D -m 0644 "$PKG/systemd/grctld.service" "$ROOT/lib/systemd/system/grctld.service"
install -D -m 0644 "$PKG/sysusers.d/grctl.conf" "$ROOT/usr/lib/sysusers.d/grctl.conf"
install -D -m 0644 "$PKG/tmpfiles.d/grctl.conf" "$ROOT/usr/lib/tmpfiles.d/grctl.conf"
install -D -m 0644 "$PKG/default/grctld" "$ROOT/etc/default/grctld"
install -d -m 0755 "$ROOT/etc/grctl"
install -d -m 0700 "$ROOT/etc/grctl/credentials"
# the example config, with the schema modeline pointing at the installed schema
sed "1s|\$schema=.*|\$schema=$PREFIX/share/grctl.schema.json|" "$SRC/grctl.yaml.example" \
    > "$ROOT/etc/grctl/grctl.yaml"
chmod 0644 "$ROOT/etc/grctl/grctl.yaml"
install -D -m 0644 "$SRC/grctl/schemas/grctl.schema.json" "$ROOT$PREFIX/share/grctl.schema.json"
install -D -m 0644 "$SRC/README.md" "$ROOT/usr/share/doc/grctl/README.md"
install -D -m 0644 "$SRC/grctl.yaml.example" "$ROOT/usr/share/doc/grctl/grctl.yaml.example"
# the deployment guide and the file of each role on a cluster (engine host, worker host, NATS node)
install -D -m 0644 "$SRC/docs/deployment.md" "$ROOT/usr/share/doc/grctl/deployment.md"
install -d "$ROOT/usr/share/doc/grctl/examples"
install -m 0644 "$SRC"/docs/examples/* "$ROOT/usr/share/doc/grctl/examples/"
install -d "$ROOT/usr/bin"
ln -s "../..$PREFIX/bin/grctld" "$ROOT/usr/bin/grctld"   # relative: works in a chroot or an unpacked tree
ln -s "../..$PREFIX/bin/grctl" "$ROOT/usr/bin/grctl"     # the command line and `grctl engine`

# 3. control files
install -d "$ROOT/DEBIAN"
SIZE=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" \
    -e "s/@PYTHON_DEPENDS@/python3 (>= $PYVER), python3 (<< $PYNEXT)/" \
    "$PKG/debian/control.in" > "$ROOT/DEBIAN/control"
install -m 0644 "$PKG/debian/conffiles" "$ROOT/DEBIAN/conffiles"
install -m 0755 "$PKG/debian/postinst" "$PKG/debian/prerm" "$PKG/debian/postrm" "$ROOT/DEBIAN/"

DEB=$OUT/grctl_${VERSION}_${ARCH}.deb
dpkg-deb --root-owner-group -Zgzip --build "$ROOT" "$DEB" >/dev/null
echo "$DEB"
