#!/bin/sh
# Install grctl into DESTDIR as both packages ship it, offline, from the sources and the vendored,
# hash-checked files in packaging/vendor (see vendor.sh): a virtual environment under /opt/grctl with
# grctl and its dependencies only (no pip, setuptools or activate scripts), its objects stripped and
# its bytecode compiled; the unit, sysusers/tmpfiles entries, /etc/default/grctld, manual pages,
# documentation and examples. debian/rules and packaging/rpm/grctl.spec both call it.
#
#   packaging/make-tree.sh DESTDIR UNITDIR DOCDIR
#
# PYTHON (default /usr/bin/python3) is the target's interpreter: the environment links to its real
# file (e.g. /usr/bin/python3.11), so the package depends on that minor version. SOURCE_DATE_EPOCH
# makes the bytecode and the archives reproducible; no path of the build ends up in a file.
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=$1 UNITDIR=$2 DOCDIR=$3
PREFIX=/opt/grctl
VENDOR=${GRCTL_VENDOR:-$SRC/packaging/vendor}
PYTHON=$(readlink -f "${PYTHON:-/usr/bin/python3}")
STRIP=${STRIP:-strip}
: "${SOURCE_DATE_EPOCH:?SOURCE_DATE_EPOCH must be set (the build date of the package)}"
export SOURCE_DATE_EPOCH PYTHONHASHSEED=0 PIP_NO_INDEX=1 PIP_CONFIG_FILE=/dev/null
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1

"$SRC/packaging/vendor.sh" --check "$VENDOR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/grctl-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROOT=$DESTDIR$PREFIX

# 1. grctl's wheel, from a clean copy of the sources (no build/, egg-info or caches)
mkdir -p "$WORK/src"
tar -C "$SRC" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist --exclude='*.egg-info' \
    --exclude=./debian --exclude=./packaging --exclude=./tests --exclude=./.cache --exclude=__pycache__ \
    --exclude=.pytest_cache --exclude=.ruff_cache --exclude=.mypy_cache -cf - . | tar -C "$WORK/src" -xf -
"$PYTHON" -m venv "$WORK/tool"    # pip from the interpreter's own bundled wheel: no download
"$WORK/tool/bin/pip" wheel --quiet --no-deps --find-links "$VENDOR" -w "$WORK/wheels" "$WORK/src"

# 2. the environment: no pip in it; the tool's pip installs the lock's runtime pins and grctl's wheel,
#    each checked against its hash (--require-hashes: a file in packaging/vendor that the lock does
#    not pin is never picked, whatever its version)
"$PYTHON" -m venv --without-pip "$ROOT"
wheel=$(cd "$WORK/wheels" && echo grctl-*.whl)
version=${wheel#grctl-}; version=${version%%-*}
{ "$SRC/packaging/vendor.sh" --requirements
  echo "grctl==$version --hash=sha256:$(sha256sum < "$WORK/wheels/$wheel" | cut -c1-64)"; } > "$WORK/requirements.txt"
"$WORK/tool/bin/pip" --python "$ROOT/bin/python" install --quiet --no-compile --no-warn-script-location \
    --require-hashes -r "$WORK/requirements.txt" --find-links "$VENDOR" --find-links "$WORK/wheels" \
    --only-binary :all: --no-binary nkeys
test -z "$(find "$ROOT" -name direct_url.json)"    # installed by name: no record of a build path
# only grctl's commands and the server: no activate scripts, no dependencies' command lines
find "$ROOT/bin" -type f ! -name grctl ! -name grctld ! -name nats-server -delete
# scripts and pyvenv.cfg name the build path: point them at the installed one
grep -rlI --null "$ROOT" "$ROOT/bin" "$ROOT/pyvenv.cfg" | xargs -0 -r sed -i "s|$ROOT|$PREFIX|g"
# the install records list the scripts as they were written (naming the build path): record them as
# shipped, and forget the ones removed
"$PYTHON" - "$ROOT" <<'PY'
import base64, hashlib, pathlib, sys
site = next(pathlib.Path(sys.argv[1]).glob("lib/python3*/site-packages"))
for record in site.glob("*.dist-info/RECORD"):
    lines = []
    for line in record.read_text().splitlines():
        name = line.rsplit(",", 2)[0]
        if name.startswith("../../../bin/"):
            script = site / name
            if not script.is_file():
                continue
            data = script.read_bytes()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            line = f"{name},sha256={digest},{len(data)}"
        lines.append(line)
    record.write_text("\n".join(lines) + "\n")
PY
find "$ROOT" -type f \( -name '*.so' -o -name '*.so.*' \) -exec "$STRIP" --strip-unneeded {} +
"$STRIP" --strip-unneeded "$ROOT/bin/nats-server"
# bytecode now, owned by the package (the service cannot write it under ProtectSystem=strict);
# checked-hash pycs do not depend on file dates, and -s/-p keep the build path out of them
"$ROOT/bin/python" -m compileall -q -j 1 --invalidation-mode checked-hash -s "$DESTDIR" -p / \
    "$ROOT/lib" >/dev/null
# the schema editors are pointed at (the examples' first line), from the installed package
mkdir -p "$ROOT/share"
ln -s "../$(cd "$ROOT" && echo lib/python3*/site-packages/grctl/schemas/grctl.schema.json)" \
    "$ROOT/share/grctl.schema.json"

# 3. system integration
install -D -m 0644 "$SRC/packaging/systemd/grctld.service" "$DESTDIR$UNITDIR/grctld.service"
install -D -m 0644 "$SRC/packaging/sysusers.d/grctl.conf" "$DESTDIR/usr/lib/sysusers.d/grctl.conf"
install -D -m 0644 "$SRC/packaging/tmpfiles.d/grctl.conf" "$DESTDIR/usr/lib/tmpfiles.d/grctl.conf"
install -D -m 0644 "$SRC/packaging/default/grctld" "$DESTDIR/etc/default/grctld"
install -d -m 0755 "$DESTDIR/etc/grctl" "$DESTDIR/usr/bin"
ln -sf "$PREFIX/bin/grctld" "$DESTDIR/usr/bin/grctld"
ln -sf "$PREFIX/bin/grctl" "$DESTDIR/usr/bin/grctl"
install -D -m 0644 "$SRC/packaging/man/grctld.8" "$DESTDIR/usr/share/man/man8/grctld.8"
install -D -m 0644 "$SRC/packaging/man/grctl.1" "$DESTDIR/usr/share/man/man1/grctl.1"
gzip -9n "$DESTDIR/usr/share/man/man8/grctld.8" "$DESTDIR/usr/share/man/man1/grctl.1"

# 4. documentation: the guide and the file of each role (engine host, worker host, NATS node, a
#    single node), their schema line pointing at the installed schema
install -D -m 0644 "$SRC/README.md" "$DESTDIR$DOCDIR/README.md"
install -D -m 0644 "$SRC/docs/operations.md" "$DESTDIR$DOCDIR/operations.md"
install -D -m 0644 "$SRC/docs/deployment.md" "$DESTDIR$DOCDIR/deployment.md"
install -d "$DESTDIR$DOCDIR/examples"
for f in "$SRC"/docs/examples/* "$SRC/grctl.yaml.example"; do
    name=$(basename "$f")
    [ "$name" = grctl.yaml.example ] && name=grctl-single-node.yaml
    sed "1s|\$schema=.*|\$schema=$PREFIX/share/grctl.schema.json|" "$f" > "$DESTDIR$DOCDIR/examples/$name"
    chmod 0644 "$DESTDIR$DOCDIR/examples/$name"
done
