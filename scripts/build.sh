#!/usr/bin/env bash
# Configure and build QEMU of BASE in build/qemu-BASE/build: one target,
# x86_64-softmmu, firmware from Debian's packages, ccache through Debian's
# compiler links.  Extra ninja targets may be given as arguments.
#
# Two sets of configure options (PROFILE):
#   full  the default build directory build/qemu-BASE/build (make build,
#         make check, make demo, make install): configured as Debian's
#         qemu-system-x86 package on this architecture, the options taken
#         from the base's own debian/rules and debian/control
#         (scripts/debian-opts.sh), whose build dependencies are installed
#         first (scripts/deps.sh --build); plus the man pages, PREFIX
#         (default /usr/local) for make install, and relocatable (QEMU's
#         default, unlike Debian's /usr build) so that a tree installed
#         with DESTDIR finds its own modules and data.  Builds everything
#         (tools, modules, man pages).
#   test  every other build directory (OBJ=..., QEMU_SRC=...: make
#         check-asan's build-asan, make fuzz's build-fuzz, unpatched 10.2.2
#         in build/upstream-10.2, scripts/build-each.sh, bench/steps.py):
#         only what the tests need, qemu-system-x86_64 and the targets
#         given.
# PROFILE=full|test overrides the choice.  OBJ=dir builds in another
# directory, QEMU_SRC=dir another source tree, EXTRA_CONFIGURE adds
# configure options, NINJAFLAGS ninja options (-j2).
#
# configure runs when the build directory has none yet or when the options
# differ from those it was configured with ($OBJ/qemu-sriov-configure.opts;
# a directory from before that file is compared with its config.status),
# so a change of options, of the base's debian/control or of the installed
# packages reconfigures it in place.
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

PREFIX=${PREFIX:-/usr/local}
if [ -z "${PROFILE:-}" ]; then
    PROFILE=test
    [ "$OBJ" = "$BUILD/qemu-$BASE/build" ] && PROFILE=full
fi
opts=(--target-list=x86_64-softmmu --python=/usr/bin/python3
      --disable-download --disable-install-blobs)
case $PROFILE in
full)
    # Debian's build dependencies of this base (installs what is missing)
    "$top/scripts/deps.sh" --build "$SRC"
    mapfile -t debian < <("$top/scripts/debian-opts.sh" configure "$SRC")
    # debian/rules' FIRMWAREPATH; the version string names the series
    opts+=(--prefix="$PREFIX"
           --firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu
           "--with-pkgversion=qemu-sriov $BASE series"
           "${debian[@]}" --enable-docs --disable-rust --enable-fdt=system)
    targets=(all)
    ;;
test)
    opts+=(--firmwarepath=/usr/share/seabios:/usr/lib/ipxe/qemu:/usr/share/qemu
           --disable-docs --disable-tools --disable-guest-agent
           --disable-gtk --disable-sdl --disable-opengl --disable-vnc
           --disable-spice --disable-curses --disable-xkbcommon
           --disable-gnutls --disable-nettle --disable-gcrypt
           --disable-libusb --disable-usb-redir --disable-smartcard
           --disable-rust --disable-plugins --enable-slirp --enable-fdt=system)
    targets=(qemu-system-x86_64)
    ;;
*) echo "build: PROFILE=$PROFILE: use full or test" >&2; exit 2 ;;
esac
# shellcheck disable=SC2206
opts+=($EXTRA_CONFIGURE)

# The options as configure's config.status writes them (quote_sh)
quoted() {
    local a out=""
    for a; do out="$out '${a//\'/\'\\\'\'}'"; done
    printf '%s' "${out# }"
}
stamp=$OBJ/qemu-sriov-configure.opts
want="$(quoted "$SRC/configure" "${opts[@]}")"
configured() {
    [ -f "$OBJ/build.ninja" ] || return 1
    if [ -f "$stamp" ]; then
        [ "$(cat "$stamp")" = "$want" ]
    else
        # configured before the stamp: compare with config.status, and
        # record the options if they are the same
        [ -f "$OBJ/config.status" ] &&
            grep -qxF "exec $want \"\$@\"" "$OBJ/config.status" &&
            printf '%s\n' "$want" > "$stamp"
    fi
}
if ! configured; then
    mkdir -p "$OBJ"
    rm -f "$stamp"
    [ -f "$OBJ/build.ninja" ] && echo "build: $OBJ: configure options changed, reconfiguring"
    (cd "$OBJ" && "$SRC/configure" "${opts[@]}") > "$log" 2>&1 || {
            tail -30 "$log" >&2
            echo "build: configure failed, see $log" >&2
            exit 1
        }
    printf '%s\n' "$want" > "$stamp"
fi
# shellcheck disable=SC2086
ninja -C "$OBJ" $NINJAFLAGS "${targets[@]}" "$@"

# A QEMU run from the build tree looks for firmware in the firmware path
# relocated into build/qemu-bundle; the +ds source has no blobs, so point
# those directories at Debian's packaged firmware.
for d in /usr/share/seabios /usr/lib/ipxe/qemu /usr/share/qemu; do
    if [ ! -e "$OBJ/qemu-bundle$d" ]; then
        mkdir -p "$(dirname "$OBJ/qemu-bundle$d")"
        ln -s "$d" "$OBJ/qemu-bundle$d"
    fi
done
