"""Migration between this series and unpatched QEMU 10.2.2.

A guest uses a composed device (a virtio-net PF and three VFs, the VFs
before the PF on the command line, as unpatched 10.2.2 requires) with the
VFs enabled and traffic through each, and migrates live between our QEMU
and unpatched 10.2.2 (build/upstream-10.2, `make upstream`), on the
machine type that both have, pc-q35-10.2:

- from unpatched 10.2.2 to the series: the guest's traffic through every
  VF carries on, and the VFs are as they were (test_lifecycle's checks);
- from the series to unpatched 10.2.2: the stream loads and the guest
  runs on, but unpatched 10.2.2 resets the VFs after loading them (the
  bug that the series' "pcie_sriov: Do not reset VFs when loading their
  PF's state" fixes), so only the PF carries traffic there: the guest
  checks the PF and leaves the VFs alone (their drivers would wait for
  devices that lost their state).

This needs upstream's wire format in the series (testenv.FEATURES):
the 10.2 series has it; the 10.0 series does not yet, so its runs are
skipped.
"""

import os

import interactive
from guestlib import BASE, Skip, needs
from test_lifecycle import (LC_LIB, enabled_state, lc_compose, migrate,
                            qemu_clean)
from test_sriov import Scenario
from testenv import qemu_of

MACHINE = 'pc-q35-10.2'


def upstream_qemu():
    path = qemu_of('upstream')
    if not os.path.exists(path):
        raise Skip(f'no unpatched 10.2.2 build at {path} (make upstream)')
    return path


def crossver_test(name, to_upstream):
    upstream = upstream_qemu()
    args, pfs = lc_compose()
    pf = pfs[0]
    s = Scenario(pfs)
    s.sh(LC_LIB)
    s.pf_check(pf)
    s.enable(pf, 3)
    for i, vf in enumerate(pf.vfs):
        s.sh(f'bg_ping vf{i} {vf.mac} {vf.net}')
    for i, vf in enumerate(pf.vfs):
        s.sh(f'check before-migration-vf{i}-bg-ping '
             f'wait_for 20 grep -q ok /tmp/bg-vf{i}')
    s.sh('host migrate unix || return 1')
    if to_upstream:
        # Unpatched 10.2.2 reset the VFs: only the PF is checked
        s.sh('bg_stop')
        s.sh(f'ping_fresh after-migration-pf-ping {pf.mac} {pf.net}')
    else:
        for i, vf in enumerate(pf.vfs):
            s.sh(f'bg_resumed after-migration-vf{i}-bg-ping vf{i}')
        s.sh('bg_stop')
        enabled_state(s, pf, 'after-migration')

    def handler(sess, action, arg):
        if action == 'migrate':
            return migrate(sess, arg,
                           dst_qemu=upstream if to_upstream else
                           interactive.QEMU)
        raise interactive.HostError(f'unknown action {action}')

    res = interactive.boot(name, s.text(), handler, args=args, timeout=300,
                           qemu=interactive.QEMU if to_upstream else
                           upstream, machine=MACHINE)
    qemu_clean(res, 'dst')
    return res


@needs('upstream-wire-format')
def test_migrate_from_upstream():
    """unpatched 10.2.2 -> this series, live, VFs enabled and in use"""
    return crossver_test(f'crossver-{BASE}-from-upstream', to_upstream=False)


@needs('upstream-wire-format')
def test_migrate_to_upstream():
    """this series -> unpatched 10.2.2, live, VFs enabled and in use"""
    return crossver_test(f'crossver-{BASE}-to-upstream', to_upstream=True)
