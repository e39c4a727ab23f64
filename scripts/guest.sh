#!/usr/bin/env bash
# Build the Linux guest test bed from Debian packages into build/guest:
#   vmlinuz        the kernel that linux-image-amd64 currently resolves to
#   initramfs.cpio a busybox-static initramfs with the virtio modules
# The guest's /init (guest/init) runs /scenario.sh, which the harness adds
# as a second cpio archive at boot.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/config.sh"

MODULES="virtio_pci virtio_net virtio_blk"
stamp=$GUEST/.done
inputs="$top/scripts/guest.sh $top/guest/init $top/guest/check.sh"
if [ -f "$stamp" ] && [ -z "$(find $inputs -newer "$stamp")" ]; then
    exit 0
fi

mkdir -p "$GUEST/debs"
cd "$GUEST/debs"
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
       awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
if [ -z "$kpkg" ]; then
    apt-get update -qq
    kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
fi
[ -n "$kpkg" ] || { echo "guest: cannot resolve linux-image-amd64" >&2; exit 1; }
kver=${kpkg#linux-image-}
ls "$kpkg"_*.deb >/dev/null 2>&1 || apt-get download -qq "$kpkg"
ls busybox-static_*.deb >/dev/null 2>&1 || apt-get download -qq busybox-static

rm -rf "$GUEST/kpkg" "$GUEST/bb" "$GUEST/root"
dpkg-deb -x "$(ls "$kpkg"_*.deb | tail -n1)" "$GUEST/kpkg"
dpkg-deb -x "$(ls busybox-static_*.deb | tail -n1)" "$GUEST/bb"
cp "$GUEST/kpkg/boot/vmlinuz-$kver" "$GUEST/vmlinuz"

root=$GUEST/root
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,etc,run,mnt,root}
cp "$GUEST/bb/bin/busybox" "$root/bin/busybox"
for app in $("$root/bin/busybox" --list); do
    [ "$app" = busybox ] || ln -sf busybox "$root/bin/$app"
done
ln -sf ../bin/busybox "$root/sbin/modprobe"
install -m 0755 "$top/guest/init" "$root/init"
mkdir -p "$root/lib"
install -m 0644 "$top/guest/check.sh" "$root/lib/check.sh"

# The modules and everything they depend on, found with modinfo; then depmod.
kmod=$GUEST/kpkg/lib/modules/$kver
find_mod() { find "$kmod/kernel" -name "$1.ko*" | head -n1; }
declare -A seen=()
add_mod() {
    local name=${1//-/_} f dep
    [ -n "${seen[$name]:-}" ] && return 0
    seen[$name]=1
    f=$(find_mod "$name")
    if [ -z "$f" ]; then
        grep -q "/$name.ko" "$kmod/modules.builtin" && return 0
        echo "guest: module $name not found" >&2; exit 1
    fi
    mkdir -p "$root/lib/modules/$kver/$(dirname "${f#$kmod/}")"
    cp "$f" "$root/lib/modules/$kver/${f#$kmod/}"
    for dep in $(/sbin/modinfo -F depends "$f" | tr , ' '); do add_mod "$dep"; done
}
for m in $MODULES; do add_mod "$m"; done
cp "$kmod"/modules.order "$kmod"/modules.builtin* "$root/lib/modules/$kver/"
/sbin/depmod -b "$root" "$kver"
echo "$kver" > "$root/etc/kernel-version"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$GUEST/initramfs.cpio"
echo "$kver" > "$GUEST/kernel-version"
touch "$stamp"
echo "guest: kernel $kver, initramfs $(du -h "$GUEST/initramfs.cpio" | cut -f1) (modules: ${!seen[*]})"
