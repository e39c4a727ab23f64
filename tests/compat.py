#!/usr/bin/env python3
"""Migration of every kind of virtio device between BASE's series and
unpatched QEMU 10.2.2 (build/upstream-10.2, `make upstream`), both ways.

The series change how QEMU keeps virtio state (only the virtqueues that a
device has get state, see "virtio: Give state only to the virtqueues a
device has"), and must not change the migration stream.  For each device
below, on the machine type that both QEMUs have (pc-q35-10.2 for the 10.2
series, pc-q35-10.0 for the 10.0 series), a VM under the qtest
accelerator is migrated to a file by one QEMU and loaded by the other;
the load must succeed, and x-query-virtio-status and the status of each
of the device's queues (x-query-virtio-queue-status) must read the same
on both sides.  Each device is migrated twice: as QEMU created it, and
after a minimal driver (Driver below, through the qtest protocol) set it
up the way a guest does: VIRTIO_F_VERSION_1 negotiated, every queue with
its rings and an MSI-X vector, the first one shorter than its default
size (so the virtio/virtqueues and virtio/ringsize subsections, which
carry a field of every queue number, are sent), and DRIVER_OK; then the
driver's view of every queue (size, vector, enable, ring addresses)
must read the same on both sides too.  Prints TAP; run by tests/check.py
(suite compat).
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# pylint: disable=wrong-import-position
from testenv import BASE, SRC, QEMU, LOGS, qemu_of  # noqa: E402

sys.path.insert(0, os.path.join(SRC, 'python'))
from qemu.machine.qtest import QEMUQtestMachine  # noqa: E402

MACHINE = {'10.0': 'pc-q35-10.0', '10.2': 'pc-q35-10.2'}[BASE]
FIRMWARE = ['-L', '/usr/share/seabios', '-L', '/usr/lib/ipxe/qemu',
            '-L', '/usr/share/qemu']

# (name, QEMU arguments): each device has id "dev", and is put at
# 00:05.0 (DEVFN), where Driver finds it
DEVFN = 5 << 3
DEVICES = [
    ('virtio-net', ['-netdev', 'user,id=n0',
                    '-device', 'virtio-net-pci,netdev=n0,id=dev']),
    ('virtio-net-mq', ['-netdev', 'user,id=n0',
                       '-device', 'virtio-net-pci,netdev=n0,mq=on,'
                                  'vectors=10,id=dev']),
    ('virtio-blk', ['-blockdev', 'null-co,node-name=d0',
                    '-device', 'virtio-blk-pci,drive=d0,num-queues=4,id=dev']),
    ('virtio-scsi', ['-device', 'virtio-scsi-pci,num_queues=2,id=dev']),
    ('virtio-serial', ['-device', 'virtio-serial-pci,id=dev']),
    ('virtio-rng', ['-device', 'virtio-rng-pci,id=dev']),
    ('virtio-balloon', ['-device', 'virtio-balloon-pci,id=dev']),
    ('virtio-keyboard', ['-device', 'virtio-keyboard-pci,id=dev']),
    ('virtio-tablet', ['-device', 'virtio-tablet-pci,id=dev']),
    ('virtio-gpu', ['-device', 'virtio-gpu-pci,id=dev']),
    ('virtio-iommu', ['-device', 'virtio-iommu-pci,id=dev']),
]


class Failed(Exception):
    pass


# virtio 1.x PCI: capability types, common configuration registers
CAP_COMMON, CAP_NOTIFY = 1, 2
DEVICE_FEATURE_SELECT, DEVICE_FEATURE = 0x00, 0x04
DRIVER_FEATURE_SELECT, DRIVER_FEATURE = 0x08, 0x0c
NUM_QUEUES, DEVICE_STATUS = 0x12, 0x14
QUEUE_SELECT, QUEUE_SIZE, QUEUE_MSIX_VECTOR = 0x16, 0x18, 0x1a
QUEUE_ENABLE, QUEUE_DESC, QUEUE_DRIVER, QUEUE_DEVICE = 0x1c, 0x20, 0x28, 0x30
BAR_BASE = 0xc0000000           # in q35's PCI hole below 4 GiB
RINGS = 0x100000                # guest RAM for the rings, 64 KiB a queue


class Driver:
    """Just enough of a virtio 1.x PCI driver, through the qtest protocol,
    for the device at 00:05.0 (config space through 0xcf8/0xcfc)."""

    def __init__(self, vm):
        self.vm = vm
        self.common = self.find_common()
        self.vectors = self.msix_vectors()

    def cmd(self, line):
        out = self.vm.qtest(line)
        if not out.startswith('OK'):
            raise Failed(f'qtest {line}: {out}')
        return int(out.split()[1], 0) if len(out.split()) > 1 else None

    def cfg(self, size, off, val=None):
        self.cmd(f'outl 0xcf8 0x{0x80000000 | DEVFN << 8 | off & 0xfc:x}')
        port = 0xcfc + (off & 3)
        if val is None:
            return self.cmd(f'in{size} 0x{port:x}')
        self.cmd(f'out{size} 0x{port:x} 0x{val:x}')
        return None

    def find_common(self):
        """Map the BAR of the common configuration; its address."""
        off = self.cfg('b', 0x34)
        while off:
            if self.cfg('b', off) == 0x09 and self.cfg('b', off + 3) == \
                    CAP_COMMON:
                bar = self.cfg('b', off + 4)
                where = self.cfg('l', off + 8)
                break
            off = self.cfg('b', off + 1)
        else:
            raise Failed('no virtio common configuration capability')
        reg = 0x10 + 4 * bar
        if self.cfg('l', reg) & ~0xf != BAR_BASE:
            self.cfg('l', reg, BAR_BASE)
            self.cfg('l', reg + 4, 0)           # 64-bit BAR
            self.cfg('w', 0x04, 0x6)            # memory, bus master
        return BAR_BASE + where

    def msix_vectors(self):
        """The size of the MSI-X table, 0 without MSI-X."""
        off = self.cfg('b', 0x34)
        while off:
            if self.cfg('b', off) == 0x11:
                return (self.cfg('w', off + 2) & 0x7ff) + 1
            off = self.cfg('b', off + 1)
        return 0

    def rd(self, size, reg):
        return self.cmd(f'read{size} 0x{self.common + reg:x}')

    def wr(self, size, reg, val):
        self.cmd(f'write{size} 0x{self.common + reg:x} 0x{val:x}')

    def set_up(self):
        """What a guest driver does, for every queue."""
        self.wr('b', DEVICE_STATUS, 0x3)        # ACKNOWLEDGE, DRIVER
        self.wr('l', DEVICE_FEATURE_SELECT, 1)
        high = self.rd('l', DEVICE_FEATURE)
        self.wr('l', DRIVER_FEATURE_SELECT, 1)
        self.wr('l', DRIVER_FEATURE, high & 0x1)    # VIRTIO_F_VERSION_1
        self.wr('l', DRIVER_FEATURE_SELECT, 0)
        self.wr('l', DRIVER_FEATURE, 0)
        self.wr('b', DEVICE_STATUS, 0xb)        # FEATURES_OK
        for q in range(self.rd('w', NUM_QUEUES)):
            self.wr('w', QUEUE_SELECT, q)
            size = self.rd('w', QUEUE_SIZE)
            if not size:
                continue
            if q == 0:
                self.wr('w', QUEUE_SIZE, size // 2)
            rings = RINGS + q * 0x10000
            self.wr('q', QUEUE_DESC, rings)
            self.wr('q', QUEUE_DRIVER, rings + 0x8000)
            self.wr('q', QUEUE_DEVICE, rings + 0xc000)
            if self.vectors:
                self.wr('w', QUEUE_MSIX_VECTOR, q % self.vectors)
            self.wr('w', QUEUE_ENABLE, 1)
        # A driver may give a vector to a queue the device does not have,
        # and read it back (it is not migrated)
        if self.vectors:
            self.wr('w', QUEUE_SELECT, self.rd('w', NUM_QUEUES) + 3)
            self.wr('w', QUEUE_MSIX_VECTOR, 0)
            if self.rd('w', QUEUE_MSIX_VECTOR) != 0:
                raise Failed('the vector of a queue beyond num_queues is '
                             'lost')
        self.wr('w', QUEUE_SELECT, 0)
        self.wr('b', DEVICE_STATUS, 0xf)        # DRIVER_OK

    def queues(self):
        """The driver's view of each queue (queue_select back at 0)."""
        view = [self.rd('b', DEVICE_STATUS)]
        for q in range(self.rd('w', NUM_QUEUES)):
            self.wr('w', QUEUE_SELECT, q)
            view.append({r: self.rd(size, reg) for r, size, reg in (
                ('size', 'w', QUEUE_SIZE), ('vector', 'w', QUEUE_MSIX_VECTOR),
                ('enable', 'w', QUEUE_ENABLE), ('desc', 'q', QUEUE_DESC),
                ('driver', 'q', QUEUE_DRIVER), ('device', 'q', QUEUE_DEVICE))})
        self.wr('w', QUEUE_SELECT, 0)
        return view


def start(name, binary, args, tmp, incoming=False):
    vm = QEMUQtestMachine(binary, base_temp_dir=tmp, name=name)
    vm.add_args(*FIRMWARE, '-machine', MACHINE, '-m', '128',
                '-nodefaults', '-display', 'none', '-S',
                *[a.replace('id=dev', 'id=dev,addr=0x5') for a in args])
    if incoming:
        vm.add_args('-incoming', 'defer')
    try:
        vm.launch()
    except Exception as e:  # pylint: disable=broad-except
        raise Failed(f'{binary} did not start: {e}\n{vm.get_log()}') from e
    return vm


def wait_migration(vm):
    for _ in range(1200):
        info = vm.cmd('query-migrate')
        if info.get('status') in ('completed', 'failed', 'cancelled'):
            return info
        time.sleep(0.05)
    raise Failed('the migration did not end in a minute')


def virtio_state(vm):
    """The device's virtio status and the status of each of its queues.
    Not start-on-kick: virtio_load() sets it for a device whose driver has
    not started it, so a loaded device differs from its source there."""
    path = '/machine/peripheral/dev/virtio-backend'
    status = vm.cmd('x-query-virtio-status', path=path)
    del status['start-on-kick']
    queues = []
    for q in range(64):
        r = vm.qmp('x-query-virtio-queue-status', path=path, queue=q)
        if 'error' in r:
            break
        if BASE == '10.0':
            # Debian's 10.0.13 makes every queue 1024 entries long (its
            # "Always set to max queue size for qemu <11.1"), 10.2.2 keeps
            # each device's own default: configuration, not migrated state
            del r['return']['vring-num-default']
        queues.append(r['return'])
    return status, queues


def migrate(name, args, src_bin, dst_bin, tmp, driver):
    state = os.path.join(tmp, 'state')
    src = start(f'{name}-src', src_bin, args, tmp)
    try:
        if driver:
            Driver(src).set_up()
        before = virtio_state(src)
        if driver:
            before += (Driver(src).queues(),)
        src.cmd('migrate', uri=f'file:{state}')
        info = wait_migration(src)
        if info.get('status') != 'completed':
            raise Failed(f'saving failed: {info}')
    finally:
        src.shutdown()
    dst = start(f'{name}-dst', dst_bin, args, tmp, incoming=True)
    try:
        dst.cmd('migrate-incoming', uri=f'file:{state}')
        info = wait_migration(dst)
        if info.get('status') != 'completed':
            dst.shutdown()
            raise Failed(f'loading failed: {info}\n{dst.get_log()}')
        after = virtio_state(dst)
        if driver:
            after += (Driver(dst).queues(),)
    finally:
        dst.shutdown()
    if before != after:
        diff = {k: (v, after[0].get(k)) for k, v in before[0].items()
                if after[0].get(k) != v}
        raise Failed(f'virtio state differs (source, destination): {diff}, '
                     f'queues {before[1:]} {after[1:]}')
    if driver and before[0]['status']['statuses'] == []:
        raise Failed('the driver did not set the device up')
    if not before[1]:
        raise Failed('the device has no queue')


def main():
    upstream = qemu_of('upstream')
    cases = [(f'{dev}/{state}/{direction}', args, src, dst, state == 'driver')
             for dev, args in DEVICES
             for state in ('created', 'driver')
             for direction, src, dst in (
                 (f'{BASE}-to-upstream', QEMU, upstream),
                 (f'upstream-to-{BASE}', upstream, QEMU))]
    print(f'1..{len(cases)}', flush=True)
    if not os.path.exists(upstream):
        for i, (name, *_) in enumerate(cases, 1):
            print(f'ok {i} compat/{name} # SKIP no unpatched 10.2.2 build '
                  f'at {upstream} (make upstream)', flush=True)
        return 0
    os.makedirs(LOGS, exist_ok=True)
    failed = 0
    for i, (name, args, src, dst, driver) in enumerate(cases, 1):
        with tempfile.TemporaryDirectory(prefix='compat-') as tmp:
            try:
                migrate(name.replace('/', '-'), args, src, dst, tmp, driver)
                print(f'ok {i} compat/{name}', flush=True)
            except Exception as e:  # pylint: disable=broad-except
                failed += 1
                print(f'not ok {i} compat/{name}', flush=True)
                for line in str(e).splitlines():
                    print(f'# {line}', flush=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
