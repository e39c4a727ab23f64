#!/usr/bin/env python3
"""Seed inputs of make fuzz for QEMU's generic-fuzz target.

generic-fuzz reads its input as operations separated by "FUZZ"; the first
byte of an operation picks it (modulo the number of operations), the rest
are its operands (see tests/qtest/fuzz/generic_fuzz.c).  Every input starts
from a freshly reset machine, where the q35 ECAM window is disabled and the
root port has no secondary bus, so a random input almost never reaches the
SR-IOV capability of a PF behind the root port.  These seeds do what
firmware and a guest driver do: enable ECAM through the MCH's PCIEXBAR,
give the root port bus 1 and memory windows, place the PF's BARs and the
VF BARs, and then exercise the SR-IOV capability (NumVFs, VF Enable, VF
MSE, System Page Size, VF BARs, ...) and the VFs' config space and BARs.
The fuzzer mutates them from there.

Usage: fuzz-seeds.py OUTDIR NUM_VFS
The layout must match scripts/fuzz.sh: QEMU_FUZZ_OBJECTS starts with
"mch pcie-root-port" (PCI devices 0 and 1 of op_pci_*), and the ECAM
region is the first matched MMIO region by address.
"""

import os
import struct
import sys

SEP = b'FUZZ'
(OP_IN, OP_OUT, OP_READ, OP_WRITE, OP_PCI_READ, OP_PCI_WRITE,
 OP_DISABLE_PCI, OP_ADD_DMA_PATTERN, OP_CLEAR_DMA_PATTERNS,
 OP_CLOCK_STEP) = range(10)
SIZE = {1: 0, 2: 1, 4: 2, 8: 3}

MCH, RP = 0, 1                  # op_pci_* device indexes
ECAM_INDEX = 0                  # op_read/op_write region index of ECAM
ECAM = 0xb0000000
MEM = 0xc0000000                # root port memory window, 16 MiB
PREF = 0xd0000000               # root port prefetchable window, 16 MiB
BUS = 1

# Config space of a virtio-net-pci function on a PCIe port (disable-legacy):
# BAR1 MSI-X (4 KiB), BAR4 the 64-bit modern BAR (16 KiB); extended
# capabilities ARI at 0x100 and, on a PF, SR-IOV at 0x108.
SRIOV = 0x108
SRIOV_CTRL = SRIOV + 0x08       # VFE 0x1, VF MSE 0x8, ARI hierarchy 0x10
SRIOV_NUM_VF = SRIOV + 0x10
SRIOV_SYS_PGSIZE = SRIOV + 0x20
SRIOV_BAR = SRIOV + 0x24


def op(code, payload=b''):
    return bytes([code]) + payload


def pci_write(dev, off, size, val):
    return op(OP_PCI_WRITE, struct.pack('<BBBxI', SIZE[size], dev, off, val))


def pci_read(dev, off, size):
    return op(OP_PCI_READ, struct.pack('<BBB', SIZE[size], dev, off))


def mmio_write(index, off, size, val):
    return op(OP_WRITE, struct.pack('<BBxxIQ', SIZE[size], index, off, val))


def mmio_read(index, off, size):
    return op(OP_READ, struct.pack('<BBxxI', SIZE[size], index, off))


def cfg_off(devfn, reg, bus=BUS):
    return (bus << 20) | (devfn << 12) | reg


def cfg_write(devfn, reg, size, val, bus=BUS):
    return mmio_write(ECAM_INDEX, cfg_off(devfn, reg, bus), size, val)


def cfg_read(devfn, reg, size, bus=BUS):
    return mmio_read(ECAM_INDEX, cfg_off(devfn, reg, bus), size)


def preamble():
    """Firmware's part: ECAM, root port bus and windows, PF BARs."""
    return [
        pci_write(MCH, 0x64, 4, 0),
        pci_write(MCH, 0x60, 4, ECAM | 1),          # PCIEXBAR, 256 MiB
        pci_write(RP, 0x19, 1, BUS),                # secondary bus
        pci_write(RP, 0x1a, 1, BUS),                # subordinate bus
        pci_write(RP, 0x20, 4, ((MEM >> 16) + 0xf0) << 16 | MEM >> 16),
        pci_write(RP, 0x24, 4, ((PREF >> 16) + 0xf0) << 16 | PREF >> 16),
        pci_write(RP, 0x28, 4, 0),
        pci_write(RP, 0x2c, 4, 0),
        pci_write(RP, 0x04, 2, 0x0006),
        cfg_read(0, 0x00, 4),                       # PF vendor/device
        cfg_write(0, 0x14, 4, MEM),                 # PF BAR1 (MSI-X)
        cfg_write(0, 0x20, 4, PREF),                # PF BAR4 (modern)
        cfg_write(0, 0x24, 4, 0),
        cfg_write(0, 0x04, 2, 0x0006),              # PF MSE, bus master
    ]


def vf_bars(page=1):
    vf_mem = MEM + 0x100000
    vf_pref = PREF + 0x100000
    return [
        cfg_write(0, SRIOV_SYS_PGSIZE, 4, page),
        cfg_write(0, SRIOV_BAR + 4, 4, vf_mem),    # VF BAR1
        cfg_write(0, SRIOV_BAR + 16, 4, vf_pref),  # VF BAR4, 64-bit
        cfg_write(0, SRIOV_BAR + 20, 4, 0),
    ]


def enable(n, ctrl=0x19):
    return [cfg_write(0, SRIOV_NUM_VF, 2, n), cfg_write(0, SRIOV_CTRL, 2, ctrl)]


def disable():
    return [cfg_write(0, SRIOV_CTRL, 2, 0x10)]


def touch_vfs(n):
    """Read the config space of the VFs, set their MSI-X enable and bus
    master, and access the mapped BARs (regions 1.. after ECAM)."""
    ops = []
    for vf in range(1, n + 1):
        ops += [cfg_read(vf, 0x00, 4), cfg_read(vf, 0x08, 4),
                cfg_read(vf, 0x10, 4), cfg_read(vf, 0x100, 4),
                cfg_write(vf, 0x04, 2, 0x0006)]
    for index in range(1, 9):
        ops += [mmio_read(index, 0, 4), mmio_write(index, 0x14, 1, 0x0f)]
    return ops


def seeds(nvfs):
    p = preamble()
    yield 'enable-all', p + vf_bars() + enable(nvfs) + touch_vfs(nvfs)
    yield 'enable-one', p + vf_bars() + enable(1) + touch_vfs(1)
    yield 'enable-disable-reenable', (
        p + vf_bars() + enable(nvfs) + touch_vfs(nvfs) + disable() +
        [cfg_read(1, 0, 4)] + enable(max(1, nvfs // 2)) +
        touch_vfs(max(1, nvfs // 2)))
    yield 'numvfs-above-total', (
        p + vf_bars() + enable(nvfs + 1) + enable(0xffff) +
        [cfg_read(0, SRIOV_NUM_VF, 2)] + touch_vfs(nvfs))
    yield 'numvfs-while-enabled', (
        p + vf_bars() + enable(nvfs) +
        [cfg_write(0, SRIOV_NUM_VF, 2, 1), cfg_write(0, SRIOV_NUM_VF, 2, 0)] +
        touch_vfs(nvfs))
    yield 'vfe-toggle', p + vf_bars() + sum(
        (enable(nvfs, ctrl) for ctrl in (0x19, 0x10, 0x11, 0x18, 0x19, 0x0,
                                          0x9, 0x1)), []) + touch_vfs(nvfs)
    yield 'page-size-while-enabled', (
        p + vf_bars() + enable(nvfs) +
        [cfg_write(0, SRIOV_SYS_PGSIZE, 4, 2),
         cfg_write(0, SRIOV_SYS_PGSIZE, 4, 0x100),
         cfg_write(0, SRIOV_SYS_PGSIZE, 4, 0)] + touch_vfs(nvfs))
    yield 'vf-bars-while-enabled', (
        p + vf_bars() + enable(nvfs) +
        [cfg_write(0, SRIOV_BAR + 4, 4, PREF),      # overlaps the PF's BAR4
         cfg_write(0, SRIOV_BAR + 16, 4, MEM),      # overlaps the PF's BAR1
         cfg_write(0, SRIOV_BAR + 0, 4, 0xffffffff),
         cfg_write(0, SRIOV_BAR + 4, 4, 0xffffffff),
         cfg_read(0, SRIOV_BAR + 4, 4)] + touch_vfs(nvfs))
    yield 'mse-toggle', (
        p + vf_bars() + enable(nvfs) +
        [cfg_write(0, 0x04, 2, 0), cfg_write(0, SRIOV_CTRL, 2, 0x11),
         cfg_write(0, 0x04, 2, 6), cfg_write(0, SRIOV_CTRL, 2, 0x19)] +
        touch_vfs(nvfs))
    # VF config space writes: command, BARs (hardwired), MSI-X control, the
    # PCIe device control (FLR) of a VF and of the PF, the PF's bus numbers.
    vf_cfg = []
    for vf in sorted({1, nvfs}):
        for reg in list(range(0, 0x100, 4)) + list(range(0x100, 0x110, 4)):
            vf_cfg.append(cfg_write(vf, reg, 4, 0xffffffff))
    yield 'vf-config-writes', p + vf_bars() + enable(nvfs) + vf_cfg
    yield 'sriov-cap-all-ones', (
        p + vf_bars() + enable(nvfs) +
        [cfg_write(0, reg, 4, 0xffffffff) for reg in range(SRIOV, SRIOV + 0x40, 4)] +
        touch_vfs(nvfs))
    yield 'root-port-bus-change', (
        p + vf_bars() + enable(nvfs) +
        [pci_write(RP, 0x19, 1, 2), cfg_read(1, 0, 4, bus=2),
         pci_write(RP, 0x19, 1, BUS)] + touch_vfs(nvfs))


def main():
    out, nvfs = sys.argv[1], int(sys.argv[2])
    os.makedirs(out, exist_ok=True)
    for name, ops in seeds(nvfs):
        data = SEP.join(ops)
        assert SEP not in b''.join(ops), name
        with open(os.path.join(out, f'seed-{name}'), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main()
