#!/usr/bin/env bash
# Fetch the pinned source package of BASE (scripts/config.sh) into the
# download cache and verify it against scripts/base.sha256.
# Order: ../shared/downloads/, the local cache (downloads/), apt-get source
# (from a deb-src entry for the base's suite, which this adds).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/config.sh"

mkdir -p "$CACHE"
have_all() {
    local d=$1 f
    for f in $BASE_FILES; do [ -f "$d/$f" ] || return 1; done
}
verify() {
    local f sums
    sums=$(for f in $BASE_FILES; do
               awk -v f="$f" '$2 == f { print; n++ } END { exit !n }' \
                   "$top/scripts/base.sha256" ||
                   { echo "fetch-base: $f is not pinned" >&2; return 1; }
           done) || return 1
    (cd "$1" && sha256sum --quiet -c - <<<"$sums")
}

if have_all "$CACHE" && verify "$CACHE"; then
    exit 0
fi
if [ -d "$SHARED_DOWNLOADS" ] && have_all "$SHARED_DOWNLOADS"; then
    for f in $BASE_FILES; do cp -f "$SHARED_DOWNLOADS/$f" "$CACHE/"; done
elif command -v apt-get >/dev/null; then
    # Add a deb-src entry for the base's suite on the machine's own archive.
    . "$top/scripts/deps.sh" >/dev/null
    list=/etc/apt/sources.list.d/qemu-sriov-src-$BASE_SUITE.list
    if [ ! -f "$list" ]; then
        echo "deb-src $DEBIAN_URI $BASE_SUITE main" > "$list"
        if [ "$BASE_SUITE" != sid ]; then
            echo "deb-src $DEBIAN_URI $BASE_SUITE-updates main" >> "$list"
            echo "deb-src ${DEBIAN_URI%/debian}/debian-security $BASE_SUITE-security main" >> "$list"
        fi
        apt-get update -qq
    fi
    (cd "$CACHE" && apt-get source --download-only "qemu=$BASE_VERSION")
else
    echo "fetch-base: no copy of the base and no apt-get" >&2
    exit 1
fi
verify "$CACHE" || { echo "fetch-base: SHA256 mismatch in $CACHE" >&2; exit 1; }
