#!/usr/bin/env bash
# Build QEMU 10.2.2 as Debian sid packages it, without a series, into
# build/upstream-10.2/build: the unpatched side of the migration tests and
# the baseline of the benchmarks.  Configured as scripts/build.sh does;
# ccache shares every object that the series does not change.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export BASE=10.2
. "$top/scripts/config.sh"

stamp=$UPSTREAM_SRC/.unpacked
if [ ! -f "$stamp" ]; then
    "$top/scripts/fetch-base.sh"
    rm -rf "$UPSTREAM_SRC"
    mkdir -p "$BUILD"
    tmpx=$(mktemp -d "$BUILD/.unpackXXXX")
    (cd "$tmpx" && dpkg-source --no-check -x "$CACHE/$BASE_DSC" qemu >/dev/null)
    mv "$tmpx/qemu" "$UPSTREAM_SRC" && rm -rf "$tmpx"
    rm -rf "$UPSTREAM_SRC/.pc"
    echo "$BASE_VERSION" > "$stamp"
fi
QEMU_SRC=$UPSTREAM_SRC OBJ=$UPSTREAM_SRC/build exec "$top/scripts/build.sh" "$@"
