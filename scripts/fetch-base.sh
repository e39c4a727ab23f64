#!/usr/bin/env bash
# Fetch the pinned base source package into the download cache and verify it.
# Order: ../shared/downloads/, the local cache (downloads/), apt-get source.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/config.sh"

mkdir -p "$CACHE"
have_all() {
    local d=$1 f
    for f in $BASE_FILES; do [ -f "$d/$f" ] || return 1; done
}
verify() {
    (cd "$1" && sha256sum --quiet -c "$top/scripts/base.sha256")
}

if have_all "$CACHE" && verify "$CACHE"; then
    exit 0
fi
if [ -d "$SHARED_DOWNLOADS" ] && have_all "$SHARED_DOWNLOADS"; then
    for f in $BASE_FILES; do cp -f "$SHARED_DOWNLOADS/$f" "$CACHE/"; done
elif command -v apt-get >/dev/null; then
    # Add a deb-src entry for trixie on the machine's own Debian archive.
    . "$top/scripts/deps.sh" >/dev/null
    list=/etc/apt/sources.list.d/qemu-sriov-src.list
    if [ ! -f "$list" ]; then
        echo "deb-src $DEBIAN_URI trixie main" > "$list"
        echo "deb-src $DEBIAN_URI trixie-updates main" >> "$list"
        echo "deb-src ${DEBIAN_URI%/debian}/debian-security trixie-security main" >> "$list"
        apt-get update -qq
    fi
    (cd "$CACHE" && apt-get source --download-only "qemu=$BASE_VERSION")
else
    echo "fetch-base: no copy of the base and no apt-get" >&2
    exit 1
fi
verify "$CACHE" || { echo "fetch-base: SHA256 mismatch in $CACHE" >&2; exit 1; }
