#!/usr/bin/env bash
# Install what building the series, the guest test bed and the tests need.
# Works on Debian 12 (meson from bookworm-backports) and Debian 13.
# Only packages that are missing are installed; run as root.
#
# bookworm-backports: a source of the machine that already carries it (a
# deb822 .sources stanza or a one-line entry) is used as it is; only when
# there is none does this add sources.list.d/qemu-sriov-backports.list.
# That file is removed again once another source carries the suite, as
# apt refuses to run when both name the same archive with different
# Signed-By options.
#
# deps.sh --sources only does that (as if meson were missing) and exits.
# deps.sh --build SRC installs the build dependencies of Debian's
# qemu-system build that the QEMU work tree SRC's debian/control names for
# this architecture (scripts/debian-opts.sh; scripts/build.sh runs it
# before it configures the full build), those that this Debian has; the
# others' features are left out by scripts/debian-opts.sh.
# From the environment: APT_ETC (where the apt sources are read and
# written, default /etc/apt) and APT_CONFIG (passed on to apt-get), so
# that tests/deps-test.sh can run it against a scratch configuration.
set -euo pipefail

PKGS=(build-essential git ninja-build libglib2.0-dev libpixman-1-dev
      libslirp-dev libfdt-dev flex bison pkg-config ccache dpkg-dev
      seabios ipxe-qemu qemu-system-data kmod cpio python3 python3-venv
      xz-utils zstd perl ca-certificates)
# The man pages of the full build (scripts/build.sh: --enable-docs), and
# the firmware that make install relies on besides seabios and ipxe-qemu
PKGS+=(python3-sphinx python3-sphinx-rtd-theme ovmf)
MESON_MIN=1.5
BACKPORTS=bookworm-backports

# shellcheck source=/dev/null
. /etc/os-release
codename=${VERSION_CODENAME:-}

APT_ETC=${APT_ETC:-/etc/apt}
OUR_LIST=$APT_ETC/sources.list.d/qemu-sriov-backports.list

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
# Writing the sources needs root only where APT_ETC is not ours.
ETC_SUDO=$SUDO
[ -w "$APT_ETC/sources.list.d" ] && ETC_SUDO=
export DEBIAN_FRONTEND=noninteractive

apt_get() {
    $SUDO env DEBIAN_FRONTEND=noninteractive \
        ${APT_CONFIG:+"APT_CONFIG=$APT_CONFIG"} apt-get "$@"
}

# The URIs of the enabled deb entries of a deb822 .sources file (stdin)
# whose Suites include $1, one per entry.
deb822_uris() {
    awk -v s="$1" '
        BEGIN { RS = ""; FS = "\n" }
        {
            delete v; f = ""
            for (i = 1; i <= NF; i++) {
                l = $i
                if (l ~ /^#/) continue
                if (l ~ /^[ \t]/) { if (f != "") v[f] = v[f] " " l; continue }
                p = index(l, ":"); if (!p) continue
                f = tolower(substr(l, 1, p - 1)); v[f] = substr(l, p + 1)
            }
            e = tolower(v["enabled"]); gsub(/[ \t]/, "", e)
            if (e ~ /^(no|false|off|0|without|disable)$/) next
            deb = 0; n = split(v["types"], w, " ")
            for (j = 1; j <= n; j++) if (w[j] == "deb") deb = 1
            has = 0; n = split(v["suites"], w, " ")
            for (j = 1; j <= n; j++) if (w[j] == s) has = 1
            split(v["uris"], u, " ")
            if (deb && has && u[1] != "") print u[1]
        }'
}

# The same for one-line sources (sources.list, *.list) on stdin.
oneline_uris() {
    awk -v s="$1" '
        { sub(/#.*/, "") }
        $1 == "deb" {
            l = $0; sub(/^[ \t]*deb[ \t]+/, "", l)
            if (l ~ /^\[/) { p = index(l, "]"); if (!p) next; l = substr(l, p + 1) }
            if (split(l, w, " ") >= 2 && w[2] == s) print w[1]
        }'
}

# "FILE<tab>URI" for every enabled deb entry of the apt sources with suite
# $1, in the order apt reads them (.sources, then one-line).  The awks
# that read this read all of it (no early exit, which pipefail would
# turn into an error).
sources_with() {
    local f u
    for f in "$APT_ETC"/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        for u in $(deb822_uris "$1" < "$f"); do printf '%s\t%s\n' "$f" "$u"; done
    done
    for f in "$APT_ETC/sources.list" "$APT_ETC"/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        for u in $(oneline_uris "$1" < "$f"); do printf '%s\t%s\n' "$f" "$u"; done
    done
}

# The URI of the machine's own Debian archive (the source that carries the
# main suite), from deb822 or one-line sources.  Never hard-coded.
debian_uri() {
    sources_with "$codename" | awk -F '\t' 'NR == 1 { print $2 }'
}
DEBIAN_URI=$(debian_uri || true)
export DEBIAN_URI

missing() {
    local p out=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || out+=("$p")
    done
    echo "${out[@]:-}"
}

# The first source file other than ours that carries bookworm-backports.
other_backports() {
    sources_with "$BACKPORTS" |
        awk -F '\t' -v ours="$OUR_LIST" '$1 != ours && !f { f = $1 } END { if (f != "") print f }'
}

# Our backports list from an earlier run goes once another source has the
# suite: apt refuses both when their Signed-By options differ.
drop_stale_list() {
    local other
    [ -f "$OUR_LIST" ] || return 0
    other=$(other_backports)
    [ -n "$other" ] || return 0
    $ETC_SUDO rm -f "$OUR_LIST"
    echo "deps: removed $OUR_LIST, $other has $BACKPORTS"
    updated=
}

# Make bookworm-backports available: reuse a source that has it, or add ours.
backports_source() {
    local other
    drop_stale_list
    other=$(other_backports)
    if [ -n "$other" ]; then
        echo "deps: $BACKPORTS from $other"
        return 0
    fi
    if [ -f "$OUR_LIST" ]; then
        echo "deps: $BACKPORTS from $OUR_LIST"
        return 0
    fi
    [ -n "$DEBIAN_URI" ] || { echo "deps: cannot find the Debian archive in apt sources" >&2; exit 1; }
    echo "deb $DEBIAN_URI $BACKPORTS main" | $ETC_SUDO tee "$OUR_LIST" >/dev/null
    echo "deps: added $OUR_LIST ($DEBIAN_URI $BACKPORTS)"
    updated=
}

updated=
apt_update() {
    [ -n "$updated" ] && return 0
    apt_get update -qq
    updated=1
}

if [ "${1:-}" = --sources ]; then
    if [ "$codename" = bookworm ]; then
        backports_source
    else
        drop_stale_list
    fi
    exit 0
fi

if [ "${1:-}" = --build ]; then
    src=${2:?deps.sh --build SRC}
    top=$(cd "$(dirname "$0")/.." && pwd)
    # Installed packages and what they provide (gnutls-dev: libgnutls28-dev)
    installed=" $(dpkg-query -W -f='${Status} ${Package} ${Provides}\n' 2>/dev/null |
        awk '/^install ok installed/ { for (i = 4; i <= NF; i++) {
                 p = $i; sub(/,$/, "", p); if (p !~ /^[(=]/ && p !~ /\)$/) print p } }' |
        tr '\n' ' ') "
    need=()
    for p in $("$top/scripts/debian-opts.sh" packages "$src"); do
        case $installed in *" $p "*) ;; *) need+=("$p") ;; esac
    done
    [ ${#need[@]} -gt 0 ] || exit 0
    # Only those that this Debian has: a package with a candidate version,
    # or a virtual one that a package provides
    have=()
    for p in "${need[@]}"; do
        if apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [^(]' ||
           apt-cache showpkg "$p" 2>/dev/null |
               sed -n '/^Reverse Provides:/,$p' | grep -q '^[a-z0-9]'; then
            have+=("$p")
        else
            # scripts/debian-opts.sh leaves its feature out, saying which
            echo "deps: $p is not in this Debian's archive"
        fi
    done
    [ ${#have[@]} -gt 0 ] || exit 0
    if [ -n "$SUDO" ] && ! command -v sudo >/dev/null; then
        echo "deps: not root, cannot install the build dependencies: ${have[*]}" >&2
        exit 0
    fi
    apt_update
    apt_get install -y -qq --no-install-recommends "${have[@]}"
    exit 0
fi

drop_stale_list

need=$(missing "${PKGS[@]}")
if [ -n "$need" ]; then
    apt_update
    # shellcheck disable=SC2086
    apt_get install -y -qq --no-install-recommends $need
fi

meson_ok() {
    command -v meson >/dev/null 2>&1 &&
        dpkg --compare-versions "$(meson --version)" ge "$MESON_MIN"
}

if ! meson_ok; then
    if [ "$codename" = bookworm ]; then
        backports_source
        apt_update
        apt_get install -y -qq --no-install-recommends -t "$BACKPORTS" meson
    else
        apt_update
        apt_get install -y -qq --no-install-recommends meson
    fi
fi
meson_ok || { echo "deps: meson >= $MESON_MIN is required" >&2; exit 1; }
echo "deps: ok (meson $(meson --version), ninja $(ninja --version))"
