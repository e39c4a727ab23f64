#!/usr/bin/env bash
# make install / make uninstall: install the full build of BASE's series
# (scripts/build.sh, PROFILE=full, build/qemu-BASE/build) under PREFIX
# (default /usr/local), below DESTDIR if set, and remove it again.
#
#   install.sh install      qemu-system-x86_64, its modules, qemu-img,
#                           qemu-io, qemu-nbd, qemu-storage-daemon,
#                           qemu-pr-helper, qemu-bridge-helper, qemu-edid,
#                           the keymaps, trace events, icons and man pages:
#                           everything QEMU's own install does
#   install.sh uninstall    removes exactly what install put there
#
# The install is recorded in a manifest, PREFIX/share/qemu-sriov/manifest
# (one line per path, "f PATH" for a file or link, "d PATH" for a
# directory that install created, paths without DESTDIR), which uninstall
# reads: it removes those files and then those directories that are empty.
# A new install first removes what the previous one recorded.
# Firmware is not installed: the binary looks for it where Debian's
# packages put it (seabios, ipxe-qemu, qemu-system-data; ovmf for UEFI),
# which scripts/deps.sh installs.  Without DESTDIR, install refuses to
# replace a file that a Debian package owns (PREFIX=/usr with Debian's
# qemu-system-x86 installed, say), so that Debian's QEMU keeps working.
#
# From the environment: BASE, PREFIX, DESTDIR, OBJ (the build directory,
# default build/qemu-BASE/build; it must be configured for PREFIX: make
# install runs scripts/build.sh with PREFIX first).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/config.sh"

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
DESTDIR=${DESTDIR%/}
mode=${1:-install}
manifest_rel=$PREFIX/share/qemu-sriov/manifest
manifest=$DESTDIR$manifest_rel

log() { echo "install: $*"; }
die() { echo "install: $*" >&2; exit 1; }

uninstall() {
    [ -f "$manifest" ] || { log "nothing to remove: no $manifest"; return 0; }
    local kind path n=0 files=() dirs=()
    while read -r kind path; do
        case $kind in f) files+=("$path") ;; d) dirs+=("$path") ;; esac
    done < "$manifest"
    for path in "${files[@]}"; do
        if [ -e "$DESTDIR$path" ] || [ -L "$DESTDIR$path" ]; then
            rm -f "$DESTDIR$path"
            n=$((n + 1))
        fi
    done
    # the directories that install created, deepest first, if empty
    printf '%s\n' "${dirs[@]}" | sort -r | while read -r path; do
        [ -n "$path" ] && rmdir "$DESTDIR$path" 2>/dev/null || true
    done
    log "removed $n files from $DESTDIR$PREFIX"
}

case $mode in
uninstall) uninstall; exit 0 ;;
install) ;;
*) die "unknown mode $mode (install or uninstall)" ;;
esac

[ -f "$OBJ/build.ninja" ] || die "$OBJ is not configured: run make build (or make install)"
stamp=$OBJ/qemu-sriov-configure.opts
grep -q "'--enable-tools'" "$stamp" 2>/dev/null ||
    die "$OBJ is not a full build (scripts/build.sh, PROFILE=full): nothing to install"
grep -qF "'--prefix=$PREFIX'" "$stamp" ||
    die "$OBJ is configured for $(grep -o "'--prefix=[^']*'" "$stamp"), not PREFIX=$PREFIX: run make install PREFIX=$PREFIX, which reconfigures it"

for p in seabios ipxe-qemu qemu-system-data ovmf; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        echo "install: note: Debian's $p is not installed; QEMU needs its firmware" \
             "(scripts/deps.sh installs it)" >&2
done

# QEMU's own install into a staging directory, to know what it installs
stage=$(mktemp -d "${TMPDIR:-/tmp}/qemu-sriov-install.XXXXXX")
trap 'rm -rf "$stage"' EXIT
DESTDIR=$stage ninja -C "$OBJ" install > "$stage.log" 2>&1 || {
    tail -20 "$stage.log" >&2; rm -f "$stage.log"; die "ninja install failed"; }
rm -f "$stage.log"
mapfile -t files < <(cd "$stage" && find . ! -type d | sed 's|^\.||' | sort)
[ ${#files[@]} -gt 0 ] || die "ninja install installed nothing"
for f in "${files[@]}"; do
    case $f in "$PREFIX"/*) ;; *) die "QEMU's install wrote $f, outside PREFIX=$PREFIX" ;; esac
done

# Files of Debian packages stay as they are
if [ -z "$DESTDIR" ]; then
    owned=$(dpkg-query -S "${files[@]}" 2>/dev/null | sed 's/^[^:]*: //' || true)
    [ -z "$owned" ] || die "these belong to Debian packages, not replacing them (choose another PREFIX):
$(dpkg-query -S $owned 2>/dev/null | head -20)"
fi

# A previous install goes first (files that this one no longer has)
uninstall > /dev/null

mkdir -p "$DESTDIR$PREFIX"
dirs=()
for f in "${files[@]}" "$manifest_rel"; do
    d=$(dirname "$f")
    missing=()
    while [ ! -d "$DESTDIR$d" ]; do missing=("$d" "${missing[@]}"); d=$(dirname "$d"); done
    for d in "${missing[@]}"; do
        mkdir -m 755 "$DESTDIR$d"
        dirs+=("$d")
    done
done
for f in "${files[@]}"; do
    rm -f "$DESTDIR$f"
    cp -a "$stage$f" "$DESTDIR$f"
done
{
    for f in "${files[@]}" "$manifest_rel"; do echo "f $f"; done
    for d in "${dirs[@]}"; do echo "d $d"; done
} > "$manifest"
log "installed ${#files[@]} files into $DESTDIR$PREFIX (manifest: $manifest)"
if [ -z "$DESTDIR" ] && [ -n "$(command -v qemu-system-x86_64)" ] &&
   [ "$(command -v qemu-system-x86_64)" != "$PREFIX/bin/qemu-system-x86_64" ]; then
    log "note: qemu-system-x86_64 on PATH is $(command -v qemu-system-x86_64), not this one"
fi
