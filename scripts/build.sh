#!/usr/bin/env bash
# Configure (once) and build QEMU of BASE in build/qemu-BASE/build: one
# target, x86_64-softmmu, only what the tests need, firmware from Debian's
# packages, ccache through meson.  Extra ninja targets may be given as
# arguments.  OBJ=dir builds in another directory (make check-asan:
# build/qemu-BASE/build-asan), QEMU_SRC=dir another source tree,
# EXTRA_CONFIGURE adds configure options, NINJAFLAGS ninja options (-j2).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/config.sh"

EXTRA_CONFIGURE=${EXTRA_CONFIGURE:-}
NINJAFLAGS=${NINJAFLAGS:-}
log=$BUILD/configure-$(basename "$SRC")-$(basename "$OBJ").log

# ccache through Debian's compiler links: QEMU's configure hands meson an
# explicit compiler, so meson's own ccache detection never applies.  Paths
# below the repository are rewritten so that another clone hits the cache.
if [ -d /usr/lib/ccache ]; then
    export PATH=/usr/lib/ccache:$PATH
    export CCACHE_BASEDIR=$top CCACHE_NOHASHDIR=1
fi
if [ "$OBJ" != "$SRC/build" ]; then
    # Only build/ is in QEMU's .gitignore; keep other build directories out
    # of the work tree's git status.
    mkdir -p "$OBJ"
    [ -e "$OBJ/.gitignore" ] || echo '*' > "$OBJ/.gitignore"
fi
if [ ! -f "$OBJ/build.ninja" ]; then
    mkdir -p "$OBJ"
    # shellcheck disable=SC2086
    (cd "$OBJ" && "$SRC/configure" \
        --target-list=x86_64-softmmu \
        --python=/usr/bin/python3 \
        --disable-download --disable-install-blobs \
        --firmwarepath=/usr/share/seabios:/usr/lib/ipxe/qemu:/usr/share/qemu \
        --disable-docs --disable-tools --disable-guest-agent \
        --disable-gtk --disable-sdl --disable-opengl --disable-vnc \
        --disable-spice --disable-curses --disable-xkbcommon \
        --disable-gnutls --disable-nettle --disable-gcrypt \
        --disable-libusb --disable-usb-redir --disable-smartcard \
        --disable-rust --disable-plugins \
        --enable-slirp --enable-fdt=system \
        $EXTRA_CONFIGURE) > "$log" 2>&1 || {
            tail -30 "$log" >&2
            echo "build: configure failed, see $log" >&2
            exit 1
        }
fi
# shellcheck disable=SC2086
ninja -C "$OBJ" $NINJAFLAGS qemu-system-x86_64 "$@"

# A QEMU run from the build tree looks for firmware in the firmware path
# relocated into build/qemu-bundle; the +ds source has no blobs, so point
# those directories at Debian's packaged firmware.
for d in /usr/share/seabios /usr/lib/ipxe/qemu /usr/share/qemu; do
    if [ ! -e "$OBJ/qemu-bundle$d" ]; then
        mkdir -p "$(dirname "$OBJ/qemu-bundle$d")"
        ln -s "$d" "$OBJ/qemu-bundle$d"
    fi
done
