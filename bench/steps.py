#!/usr/bin/env python3
"""Start-up of many plain functions at each step of the series' QEMU fixes.

The fixes of QEMU itself come early in each series: in the 10.2 series
after the fixes of upstream's SR-IOV, in the 10.0 series first.  This
script builds QEMU before and after each of those fixes (a separate git
worktree and build directory under $BUILD/steps-BASE, ccache makes the
rebuilds cheap), then measures for each binary the start-up time and peak
RSS of 1, 2 and 4 root ports of 256 plain virtio-net-pci functions each
(bench.py's baseline rows), median of --runs runs.  The fixes are the
first run of commits after the work tree's `baseline` tag that touch none
of the SR-IOV files (SRIOV_FILES), up to --upto REV if given.

    bench/steps.py [--base 10.0|10.2] [--runs N] [--from REV] [--upto REV]
                   [--no-build]

Benchmarks print figures; nothing here asserts on time.
"""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  pylint: disable=C0413

TOP = bench.TOP
# Commits that touch these are SR-IOV work, not QEMU-wide fixes
SRIOV_FILES = ['hw/pci/pcie_sriov.c', 'tests/qtest/virtio-sriov-test.c',
               'docs/system/sriov.rst', 'docs/system/devices/virtio-sriov.rst']
SRC = STEPS = WT = OBJ = None


def set_base(base):
    global SRC, STEPS, WT, OBJ  # pylint: disable=global-statement
    SRC = os.path.join(bench.BUILD, f'qemu-{base}')
    STEPS = os.path.join(bench.BUILD, f'steps-{base}')
    WT = os.path.join(STEPS, 'src')
    OBJ = os.path.join(WT, 'build')


def git(*args, cwd=None):
    return subprocess.run(['git', *args], cwd=cwd or SRC, check=True,
                          text=True, capture_output=True).stdout.strip()


def fix_commits(upto):
    """The commits of the QEMU fixes, oldest first."""
    commits = git('rev-list', '--reverse', f'baseline..{upto}').split()
    sriov = set(git('rev-list', 'baseline..HEAD', '--',
                    *SRIOV_FILES).split())
    run = []
    for c in commits:
        if c not in sriov:
            run.append(c)
        elif run:
            break
    return run


def build(commit, name):
    """Build COMMIT in the steps worktree; the binary is OBJ/NAME (next
    to the build's qemu-bundle, where it finds its firmware)."""
    if not os.path.isdir(WT):
        os.makedirs(STEPS, exist_ok=True)
        git('worktree', 'add', '--detach', WT, commit)
    git('checkout', '-q', '--detach', commit, cwd=WT)
    env = dict(os.environ, OBJ=OBJ, QEMU_SRC=WT)
    subprocess.run([os.path.join(TOP, 'scripts', 'build.sh')], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    binary = os.path.join(OBJ, name)
    os.replace(os.path.join(OBJ, 'qemu-system-x86_64'), binary)
    return binary


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument('--base', default='10.0', choices=('10.0', '10.2'))
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--from', dest='first', metavar='REV',
                    help='measure from this fix on (the one before it is '
                         'the base)')
    ap.add_argument('--upto', default='HEAD',
                    help='the last fix (default: the commit before the '
                         'first SR-IOV patch)')
    ap.add_argument('--no-build', action='store_true',
                    help='measure the binaries of an earlier run')
    opts = ap.parse_args()
    set_base(opts.base)

    commits = fix_commits(opts.upto)
    if opts.first:
        commits = commits[commits.index(git('rev-parse', opts.first)):]
    base = git('rev-parse', 'baseline')
    steps = [(base if not commits else git('rev-parse', f'{commits[0]}~1'),
              'base of the fixes')]
    steps += [(c, git('log', '-1', '--format=%s', c)) for c in commits]
    print(f'machine: {bench.machine()}')
    print(f'series:  {opts.base} ({SRC})')
    print(f'median of {opts.runs} runs; P x 256 = P root ports of 256 plain '
          'virtio-net-pci functions; start-up s / peak RSS MB\n')
    hdr = (f'{"step":<62} | {"1 x 256":>11} | {"2 x 256":>11} | '
           f'{"4 x 256":>11}')
    print(hdr)
    print('-' * len(hdr))
    for i, (commit, subject) in enumerate(steps):
        name = f'qemu-step-{i}'
        binary = (os.path.join(OBJ, name) if opts.no_build
                  else build(commit, name))
        bench.QEMU = binary
        cells = []
        t = rss = 0
        for pfs in (1, 2, 4):
            if t > 20 or rss > 4096:
                # The base's start-up grows with the square of the number
                # of functions, and so does its peak RSS (17 GB at 4 x 256)
                cells.append(f'{"-":>11}')
                continue
            t, rss = bench.median(
                lambda p=pfs: bench.startup(bench.multi_args(p, 255,
                                                             plain=True)),
                opts.runs)
            cells.append(f'{t:5.2f} {rss:5.0f}')
        print(f'{i} {subject[:60]:<60} | ' + ' | '.join(cells), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
