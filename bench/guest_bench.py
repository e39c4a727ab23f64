"""Guest part of make bench (bench.py --guest): how long a Linux guest
takes for `echo N > sriov_numvfs` and `echo 0 > sriov_numvfs`.

For each N, one guest boot under TCG with 1 PF + N VFs, composed as in
tests/guest/test_sriov.py and in the configuration of test_sriov_255vfs
(vCPUs, memory, VF properties), the same for every N so that the rows
compare.  The guest runs RUNS enable/disable cycles and reports the wall
time of each write as RESULT lines; the table shows the medians.  Nothing
here asserts on time.
"""

import os
import statistics
import sys
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, os.path.join(TOP, 'tests', 'guest'))
# pylint: disable=C0413
from test_sriov import (boot_smp, compose, Scenario,  # noqa: E402
                        MANY_VFS_SMP, MANY_VFS_MEMORY, MANY_VFS_VF_PROPS)

# The guest times each write with clock_ns (CLOCK_MONOTONIC in ns from
# /proc/timer_list, read by shell builtins: no process, as a fork costs tens
# of ms under TCG; busybox date has no %N).  The cost of a timestamp pair,
# which every figure includes, is measured too (clock-ns).  The write lasts
# as long as the kernel's work: enabling adds and probes every VF
# (virtio_net binds synchronously), disabling removes them.
SCENARIO = r'''
pf=$B/__PF__
vf_nics_bound() {
    local a i n=0
    eval "set -- \$VF_ADDRS___PFID__"
    for a; do
        for i in $B/$a/virtio*/net/*; do [ -e "$i" ] && n=$((n + 1)); done
    done
    echo $n
}
for i in 1 2 3; do
    clock_ns; t0=$NOW_NS; clock_ns; result clock-ns $((NOW_NS - t0))
done
for r in $(seq __RUNS__); do
    clock_ns; t0=$NOW_NS
    echo __N__ > $pf/sriov_numvfs || result error "run $r: echo __N__ failed"
    clock_ns
    result enable-ns $((NOW_NS - t0))
    wait_for 120 vf_nic_count __PFID__ __N__ ||
        result error "run $r: not all VFs got an interface"
    result bound $(vf_nics_bound)
    clock_ns; t0=$NOW_NS
    echo 0 > $pf/sriov_numvfs || result error "run $r: echo 0 failed"
    clock_ns
    result disable-ns $((NOW_NS - t0))
    wait_for 60 vfs_present __PFID__ 0 ||
        result error "run $r: VFs still there after echo 0:$VF_LEFT"
done
'''


def config():
    return (f'-smp {MANY_VFS_SMP} -m {MANY_VFS_MEMORY}, TCG; VFs: '
            f'virtio-net-pci{MANY_VFS_VF_PROPS} (2 MSI-X vectors each), '
            'each with its own slirp netdev')


def guest_run(n, runs):
    """Boot 1 PF + N VFs; return (enable ns list, disable ns list, bound
    list, clock ns list, problem or None, wall s of the guest run)."""
    args, pfs = compose([(0, list(range(1, n + 1)))],
                        vf_props=MANY_VFS_VF_PROPS)
    pf = pfs[0]
    s = Scenario(pfs, bulk=True)
    s.sh(SCENARIO.replace('__PF__', pf.addr).replace('__PFID__', pf.id)
         .replace('__N__', str(n)).replace('__RUNS__', str(runs)))
    t0 = time.monotonic()
    # boot_smp: boots once more after a vCPU timer stall of TCG's
    r = boot_smp(f'bench-guest-{n}vfs', s.text(), args=args,
                 timeout=120 + runs * n, smp=MANY_VFS_SMP,
                 memory=MANY_VFS_MEMORY)
    wall = time.monotonic() - t0

    def ints(key):
        return [int(v) for v in r.results.get(key, [])]
    problems = []
    if r.error:
        problems.append(r.error)
    elif r.rc:
        problems.append(f'scenario rc={r.rc}')
    problems += r.results.get('error', [])
    bound = ints('bound')
    if any(b != n for b in bound):
        problems.append(f'VFs with an interface: {bound}')
    if len(ints('enable-ns')) < runs or len(ints('disable-ns')) < runs:
        problems.append('missing figures')
    if problems:
        problems.append(f'see {r.log}')
    return (ints('enable-ns'), ints('disable-ns'), bound, ints('clock-ns'),
            '; '.join(problems) or None, wall)


def ms(ns_list):
    return statistics.median(ns_list) / 1e6 if ns_list else float('nan')


def guest_table(counts, runs):
    print(f'\nLinux guest: wall time of `echo N > sriov_numvfs` and of '
          f'`echo 0 > sriov_numvfs`,\nmedian of {runs} enable/disable '
          'cycle(s) in one guest boot per N')
    print(f'guest: {config()}')
    print('Note: Linux sleeps 100 ms after setting VF Enable and 1 s after '
          'clearing it\n(drivers/pci/iov.c), so 100 ms and 1000 ms are '
          'floors of the two columns.')
    print('Timed in the guest (CLOCK_MONOTONIC from /proc/timer_list); '
          '"clock ms" is the\ncost of a timestamp pair, included in each '
          'figure. "guest s": the whole\nguest run. "all runs": '
          'enable/disable ms of each cycle, in order.\n')
    hdr = (f'{"N":>4} | {"enable ms":>9} | {"disable ms":>10} | '
           f'{"clock ms":>8} | {"guest s":>7} | all runs')
    print(hdr)
    print('-' * len(hdr))
    for n in counts:
        en, dis, _bound, clock, problem, wall = guest_run(n, runs)
        runs_txt = ' '.join(f'{e / 1e6:.0f}/{d / 1e6:.0f}'
                            for e, d in zip(en, dis))
        print(f'{n:>4} | {ms(en):9.1f} | {ms(dis):10.1f} | {ms(clock):8.2f} '
              f'| {wall:7.0f} | {runs_txt}', flush=True)
        if problem:
            print(f'     ! {problem}', flush=True)
