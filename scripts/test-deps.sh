#!/usr/bin/env bash
# Install the Debian packages that some tests need beyond scripts/deps.sh
# (the build and the guest test bed).  make check runs it before
# tests/check.py.  Only missing packages are installed; run as root.  Each
# block below names its packages and the tests that use them; a test whose
# tool is missing all the same reports a skip that says so.
set -euo pipefail

need=()
missing() {
    local p
    for p; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
            grep -q 'install ok installed' || need+=("$p")
    done
}

# --- tests/guest/test_backends.py (VFs on vhost-user) -------------------
# dpdk-testpmd (in dpdk-dev) with the vhost PMD is the vhost-user backend;
# the ring mempool driver is what its packet pool needs.
missing dpdk-dev librte-net-vhost23 librte-mempool-ring23

# --- tests/guest/test_libvirt.py (the SR-IOV domain under libvirt) -------
# libvirtd with its QEMU driver, virtlogd and virsh; not libvirt-daemon-system
# (services, and the libvirt-qemu user, which the test creates if missing)
# nor the recommends (Debian's own QEMU among them).
missing libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients

# --- tests/guest/test_dpdk.py (dpdk-testpmd on two VFs inside the guest) -
# dpdk-testpmd and the libraries and PMDs it loads are copied from these
# packages into the guest's initramfs: the virtio PMD, the PCI and vdev
# buses, the ring mempool driver.
missing dpdk-dev librte-net-virtio23 librte-bus-pci23 librte-bus-vdev23 \
    librte-mempool-ring23

# --- tests/guest/test_screen.py, test_virtinstall.py (issue 16) --------
# A VNC client that takes screenshots and OCR to read them; virt-install
# (virtinst) for the domain with its own defaults, on libvirt (above) and
# UEFI from OVMF (ovmf's firmware descriptors in /usr/share/qemu/firmware).
missing vncsnapshot tesseract-ocr tesseract-ocr-eng virtinst ovmf

[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "test-deps: not root, cannot install: ${need[*]}" >&2
    exit 0
fi
echo "test-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}"
