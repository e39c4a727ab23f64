#!/usr/bin/env bash
# Install what building the series, the guest test bed and the tests need.
# Works on Debian 12 (meson from bookworm-backports) and Debian 13.
# Only packages that are missing are installed; run as root.
set -euo pipefail

PKGS=(build-essential git ninja-build libglib2.0-dev libpixman-1-dev
      libslirp-dev libfdt-dev flex bison pkg-config ccache dpkg-dev
      seabios ipxe-qemu qemu-system-data kmod cpio python3 python3-venv
      xz-utils zstd perl ca-certificates)
MESON_MIN=1.5

. /etc/os-release
codename=${VERSION_CODENAME:-}

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive

# The URI of the machine's own Debian archive (the source that carries the
# main suite), from deb822 or one-line sources.  Never hard-coded.
debian_uri() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v s="$codename" '
            BEGIN { RS=""; FS="\n" }
            {
                uri=""; ok=0
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); split($i, u, " "); uri=u[1] }
                    if ($i ~ /^Suites:/) { n = split($i, w, " "); for (j = 2; j <= n; j++) if (w[j] == s) ok=1 }
                }
                if (ok && uri != "") { print uri; exit }
            }' "$f"
    done
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk -v s="$codename" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i == s) { u=$2; if ($2 ~ /^\[/) u=$3; print u; exit } }' || true
}
DEBIAN_URI=$(debian_uri | head -n1 || true)
export DEBIAN_URI

missing() {
    local p out=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || out+=("$p")
    done
    echo "${out[@]:-}"
}

updated=
apt_update() {
    [ -n "$updated" ] && return 0
    $SUDO apt-get update -qq
    updated=1
}

need=$(missing "${PKGS[@]}")
if [ -n "$need" ]; then
    apt_update
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $need
fi

meson_ok() {
    command -v meson >/dev/null 2>&1 &&
        dpkg --compare-versions "$(meson --version)" ge "$MESON_MIN"
}

if ! meson_ok; then
    if [ "$codename" = bookworm ]; then
        [ -n "$DEBIAN_URI" ] || { echo "deps: cannot find the Debian archive in apt sources" >&2; exit 1; }
        list=/etc/apt/sources.list.d/qemu-sriov-backports.list
        if [ ! -f "$list" ]; then
            echo "deb $DEBIAN_URI bookworm-backports main" | $SUDO tee "$list" >/dev/null
            updated=
        fi
        apt_update
        $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports meson
    else
        apt_update
        $SUDO apt-get install -y -qq --no-install-recommends meson
    fi
fi
meson_ok || { echo "deps: meson >= $MESON_MIN is required" >&2; exit 1; }
echo "deps: ok (meson $(meson --version), ninja $(ninja --version))"
