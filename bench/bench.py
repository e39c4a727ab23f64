#!/usr/bin/env python3
"""Benchmark of composed SR-IOV devices (make bench).

For N in the given VF counts it measures, each the median of several runs:
- start-up: QEMU (qtest accelerator) from exec until the first qtest
  command is answered, and its peak RSS (VmHWM), for 1 PF + N VFs and, as
  the baseline measured in the same run, for N + 1 plain virtio-net-pci
  functions on one PCIe root port; for the largest N also with the PF
  before its VFs on the command line;
- the same for several such composed devices (--multi, by default 2 and
  4 PFs of the largest N VFs each, on root ports of their own), against
  as many plain functions on the same root ports;
- enable/disable: how long the device model takes to service the single
  config write that sets VF Enable (NumVFs = N, VF BARs programmed, VF
  MSE on) and the one that clears it;
- optionally (--guest) the Linux guest's time for `echo N > sriov_numvfs`
  and back to 0.
It measures each QEMU given with --qemu LABEL=PATH, by default those of
the same run that exist: unpatched 10.2.2 (make upstream), the 10.2
series and the 10.0 series.  A composition that a QEMU refuses (the PF
before its VFs, on unpatched 10.2.2) is reported as refused; rows that
would take more than LIMIT_S seconds or LIMIT_MB of memory, judging by
the row before, are left out.
Benchmarks print figures; nothing here asserts on time.
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
BUILD = os.environ.get('BUILD', os.path.join(TOP, 'build'))
QEMU = os.environ.get('QEMU')
DEFAULT_QEMUS = [
    ('upstream 10.2.2', os.path.join(BUILD, 'upstream-10.2', 'build',
                                     'qemu-system-x86_64')),
    ('10.2 series', os.path.join(BUILD, 'qemu-10.2', 'build',
                                 'qemu-system-x86_64')),
    ('10.0 series', os.path.join(BUILD, 'qemu-10.0', 'build',
                                 'qemu-system-x86_64')),
]
# A row is left out when the row before it took more than this
LIMIT_S = 30
LIMIT_MB = 6144

ECAM = 0xb0000000
RP_DEVFN = 2 << 3
BUS = 1
MEM_BASE = 0xc0000000
PREF_BASE = 0x800000000         # 64-bit window: room for 255 VF BARs


def addr(devfn):
    return f'0x{devfn >> 3:x}.0x{devfn & 7:x}'


def sriov_args(n, pf_first=False):
    """1 PF + N VFs on one root port: the VFs first, or with PF_FIRST the
    PF first (the result is the same device)."""
    pf = ['-device', 'virtio-net-pci,bus=rp,addr=0x0.0x0,id=pf0']
    args = ['-device', 'pcie-root-port,id=rp,chassis=1,addr=0x2.0']
    if pf_first:
        args += pf
    for i in range(n):
        args += ['-device', f'virtio-net-pci,bus=rp,addr={addr(1 + i)},'
                            'sriov-pf=pf0']
    return args if pf_first else args + pf


def plain_args(n):
    """N + 1 ordinary virtio-net-pci functions on one root port."""
    args = ['-device', 'pcie-root-port,id=rp,chassis=1,addr=0x2.0']
    for devfn in range(n + 1):
        mf = ',multifunction=on' if devfn % 8 == 0 else ''
        args += ['-device', f'virtio-net-pci,bus=rp,addr={addr(devfn)}{mf}']
    return args


def multi_args(pfs, n, plain=False):
    """PFS composed devices of 1 PF + N VFs, each on a root port of its
    own; with PLAIN, as many ordinary virtio-net-pci functions on the same
    root ports instead."""
    args = []
    for p in range(pfs):
        args += ['-device', f'pcie-root-port,id=rp{p},chassis={p + 1},'
                            f'addr=0x{p + 2:x}.0']
        for devfn in range(n + 1):
            if plain:
                mf = ',multifunction=on' if devfn % 8 == 0 else ''
                args += ['-device', f'virtio-net-pci,bus=rp{p},'
                                    f'addr={addr(devfn)}{mf}']
            elif devfn:
                args += ['-device', f'virtio-net-pci,bus=rp{p},'
                                    f'addr={addr(devfn)},sriov-pf=pf{p}']
        if not plain:
            args += ['-device', f'virtio-net-pci,bus=rp{p},addr=0x0.0x0,'
                                f'id=pf{p}']
    return args


class QTest:
    """QEMU under the qtest accelerator, driven over its stdio."""

    def __init__(self, args):
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(
            [QEMU, '-M', 'q35', '-nodefaults', '-display', 'none',
             '-accel', 'qtest', '-qtest', 'stdio', '-m', '256'] + args,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, bufsize=1)

    def cmd(self, line):
        self.p.stdin.write(line + '\n')
        while True:
            out = self.p.stdout.readline()
            if not out:
                raise RuntimeError(f'QEMU exited on {line!r}')
            if out.startswith('OK') or out.startswith('FAIL'):
                return out.split()

    def peak_rss_mb(self):
        with open(f'/proc/{self.p.pid}/status', encoding='ascii') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024
        return float('nan')

    def close(self):
        self.p.stdin.close()
        self.p.terminate()      # qtest does not quit at the end of its input
        try:
            self.p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()

    # config space through ECAM
    def cfg(self, bus, devfn, off):
        return ECAM + (bus << 20) + (devfn << 12) + off

    def cfg_write(self, size, bus, devfn, off, val):
        self.cmd(f'write{size} 0x{self.cfg(bus, devfn, off):x} 0x{val:x}')

    def cfg_read(self, size, bus, devfn, off):
        return int(self.cmd(f'read{size} 0x{self.cfg(bus, devfn, off):x}')[1],
                   16)

    def ecam_setup(self):
        self.cmd('outl 0xcf8 0x80000064')
        self.cmd('outl 0xcfc 0x0')
        self.cmd('outl 0xcf8 0x80000060')
        self.cmd(f'outl 0xcfc 0x{ECAM | 1:x}')
        self.cmd(f'writeb 0x{self.cfg(0, RP_DEVFN, 0x19):x} 0x{BUS:x}')
        self.cmd(f'writeb 0x{self.cfg(0, RP_DEVFN, 0x1a):x} 0x{BUS:x}')
        self.cfg_write('w', 0, RP_DEVFN, 0x20, MEM_BASE >> 16)
        self.cfg_write('w', 0, RP_DEVFN, 0x22, (MEM_BASE >> 16) + 0x0ff0)
        self.cfg_write('w', 0, RP_DEVFN, 0x24, (PREF_BASE >> 16) & 0xfff0)
        self.cfg_write('w', 0, RP_DEVFN, 0x26, 0xfff0)
        self.cfg_write('l', 0, RP_DEVFN, 0x28, PREF_BASE >> 32)
        self.cfg_write('l', 0, RP_DEVFN, 0x2c, PREF_BASE >> 32)
        self.cfg_write('w', 0, RP_DEVFN, 0x04, 0x6)

    def sriov_cap(self, devfn):
        off = 0x100
        while off:
            hdr = self.cfg_read('l', BUS, devfn, off)
            if hdr & 0xffff == 0x10:
                return off
            off = hdr >> 20
        raise RuntimeError('no SR-IOV capability')


def startup(args):
    q = QTest(args)
    q.cmd('readl 0x0')
    t = time.monotonic() - q.t0
    rss = q.peak_rss_mb()
    q.close()
    return t, rss


def enable_disable(n):
    """Service time of the VF Enable write and of the one that clears it."""
    q = QTest(sriov_args(n))
    q.ecam_setup()
    cap = q.sriov_cap(0)
    q.cfg_write('l', BUS, 0, cap + 0x24 + 4, MEM_BASE)            # VF BAR1
    q.cfg_write('l', BUS, 0, cap + 0x24 + 16, PREF_BASE & 0xffffffff)
    q.cfg_write('l', BUS, 0, cap + 0x24 + 20, PREF_BASE >> 32)    # VF BAR4
    q.cfg_write('w', BUS, 0, cap + 0x10, n)                       # NumVFs
    t0 = time.monotonic()
    q.cfg_write('w', BUS, 0, cap + 0x08, 0x3)                     # VFE|MSE
    t_en = time.monotonic() - t0
    visible = q.cfg_read('l', BUS, n, 0x08) != 0xffffffff
    t0 = time.monotonic()
    q.cfg_write('w', BUS, 0, cap + 0x08, 0x0)
    t_dis = time.monotonic() - t0
    q.close()
    if not visible:
        raise RuntimeError(f'VF {n} not visible after enabling {n} VFs')
    return t_en, t_dis


def median(fn, runs):
    vals = [fn() for _ in range(runs)]
    return tuple(statistics.median(v[i] for v in vals)
                 for i in range(len(vals[0])))


def machine():
    cpu = '?'
    with open('/proc/cpuinfo', encoding='ascii', errors='replace') as f:
        for line in f:
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    mem = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30
    return (f'{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, '
            f'{platform.system()} {platform.release()}')


def refused(fn):
    """FN's figures, or None when QEMU refuses the composition."""
    try:
        return fn()
    except RuntimeError:
        return None


def too_big(t, rss, factor=1):
    """Whether a row FACTOR times the size of one that took T s and RSS MB
    would pass the limits."""
    return t * factor > LIMIT_S or rss * factor > LIMIT_MB


def bench_qemu(opts, counts):
    """The tables for the QEMU in QEMU."""
    print(f'{"N":>4} | {"start-up s":>10} {"peak RSS MB":>11} | '
          f'{"enable ms":>9} {"disable ms":>10} | '
          f'{"baseline N+1 plain":>18}: {"start-up s":>10} '
          f'{"peak RSS MB":>11}')
    print('-' * 98)
    for n in counts:
        t, rss = median(lambda n=n: startup(sriov_args(n)), opts.runs)
        bt, brss = median(lambda n=n: startup(plain_args(n)), opts.runs)
        if n:
            en, dis = median(lambda n=n: enable_disable(n), opts.runs)
            ed = f'{en * 1000:9.1f} {dis * 1000:10.1f}'
        else:
            ed = f'{"-":>9} {"-":>10}'
        print(f'{n:>4} | {t:10.2f} {rss:11.0f} | {ed} | {"":>18}  '
              f'{bt:10.2f} {brss:11.0f}', flush=True)
    if counts and counts[-1]:
        # The same composition, PF first on the command line
        n = counts[-1]
        r = refused(lambda: median(
            lambda: startup(sriov_args(n, pf_first=True)), opts.runs))
        if r:
            print(f'{n:>4} | {r[0]:10.2f} {r[1]:11.0f} | (the PF before its '
                  'VFs)', flush=True)
        else:
            print(f'{n:>4} | the PF before its VFs: refused', flush=True)
    if opts.multi:
        # Several composed devices, each PF on its own root port
        n = counts[-1] if counts and counts[-1] else 255
        print(f'\n{"PFs x VFs":>9} {"functions":>9} | {"start-up s":>10} '
              f'{"peak RSS MB":>11} | {"plain functions":>15}: '
              f'{"start-up s":>10} {"peak RSS MB":>11}')
        base = prev = None
        for pfs in [1] + [int(x) for x in opts.multi.split(',')]:
            if prev and too_big(prev[0], prev[1], pfs / prev[2]):
                print(f'{f"{pfs} x {n}":>9} {pfs * (n + 1):>9} | left out: '
                      f'{prev[2]} x {n} took {prev[0]:.1f} s, '
                      f'{prev[1]:.0f} MB', flush=True)
                continue
            t, rss = median(lambda p=pfs: startup(multi_args(p, n)),
                            opts.runs)
            bt, brss = median(
                lambda p=pfs: startup(multi_args(p, n, plain=True)),
                opts.runs)
            base = base or t
            prev = (t, rss, pfs)
            print(f'{f"{pfs} x {n}":>9} {pfs * (n + 1):>9} | {t:10.2f} '
                  f'{rss:11.0f} | {"":>15}  {bt:10.2f} {brss:11.0f}'
                  f'   ({t / base:.1f} x the 1 x {n} start-up)', flush=True)


def main():
    global QEMU  # pylint: disable=global-statement
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument('--counts', default='0,1,8,64,128,255')
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--multi', default='2,4',
                    help='also PFs x N (N the largest count) for these '
                         'numbers of PFs, each on its own root port, and '
                         'the 1 x N row they compare with (empty: none)')
    ap.add_argument('--qemu', action='append', metavar='LABEL=PATH',
                    help='a QEMU to measure (default: $QEMU, else those of '
                         'this run that exist: unpatched 10.2.2, the 10.2 '
                         'and the 10.0 series)')
    ap.add_argument('--guest', action='store_true',
                    help='also time enabling VFs in the Linux guest')
    opts = ap.parse_args()
    counts = [int(x) for x in opts.counts.split(',')]
    if opts.qemu:
        qemus = [tuple(q.split('=', 1)) for q in opts.qemu]
    elif QEMU:
        qemus = [('QEMU', QEMU)]
    else:
        qemus = [(label, path) for label, path in DEFAULT_QEMUS
                 if os.path.exists(path)]

    print(f'machine: {machine()}')
    print(f'median of {opts.runs} runs; start-up = exec until the first '
          'qtest command is answered')
    for label, path in qemus:
        QEMU = path
        print(f'\n=== {label}: {path}\n')
        bench_qemu(opts, counts)
        if opts.guest:
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            from guest_bench import guest_table  # pylint: disable=C0415
            guest_table([n for n in counts if n], opts.runs)
    return 0


if __name__ == '__main__':
    sys.exit(main())
