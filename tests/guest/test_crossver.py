"""Migration between the series and the QEMUs that share a machine type
with it: unpatched QEMU 10.2.2 (build/upstream-10.2, `make upstream`) and
the other series.

A guest uses a composed device (a virtio-net PF and three VFs, the VFs
before the PF on the command line, as unpatched 10.2.2 requires) with the
VFs enabled and traffic through each, and migrates live between the QEMU
under test and another, on a machine type that both have:

- the 10.2 series and unpatched 10.2.2, both ways, on pc-q35-10.2;
- the 10.0 series and the 10.2 series, both ways, and the 10.0 series
  and unpatched 10.2.2, both ways, on pc-q35-10.0 (a Debian 13 host's VM
  moving to a newer host and back).

Into a patched QEMU the guest's traffic through every VF carries on, and
the VFs are as they were (test_lifecycle's checks).  Into unpatched
10.2.2 the stream loads and the guest runs on, but unpatched 10.2.2
resets the VFs after loading them (the bug that the 10.2 series'
"pcie_sriov: Do not reset VFs when loading their PF's state" fixes), so
only the PF carries traffic there: the guest checks the PF and leaves the
VFs alone (their drivers would wait for devices that lost their state).

This needs upstream's wire format in the series (testenv.FEATURES).
"""

import os

import interactive
from guestlib import BASE, Skip, needs
from test_lifecycle import (LC_LIB, enabled_state, lc_compose, migrate,
                            qemu_clean)
from test_sriov import Scenario
from testenv import qemu_of

# The machine type that the series shares with its peers
MACHINE = {'10.0': 'pc-q35-10.0', '10.2': 'pc-q35-10.2'}[BASE]


def peer_qemu(peer):
    path = qemu_of(peer)
    if not os.path.exists(path):
        what = 'unpatched 10.2.2' if peer == 'upstream' else \
               f'the {peer} series'
        raise Skip(f'no build of {what} at {path} (make check builds it)')
    return path


def crossver_test(name, peer, to_peer):
    """Migrate from the QEMU under test to PEER's (TO_PEER) or back."""
    other = peer_qemu(peer)
    resets_vfs = to_peer and peer == 'upstream'
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
    if resets_vfs:
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
                           dst_qemu=other if to_peer else interactive.QEMU)
        raise interactive.HostError(f'unknown action {action}')

    res = interactive.boot(name, s.text(), handler, args=args, timeout=300,
                           qemu=interactive.QEMU if to_peer else other,
                           machine=MACHINE)
    qemu_clean(res, 'dst')
    return res


@needs('upstream-wire-format')
def test_migrate_from_upstream():
    """unpatched 10.2.2 -> this series, live, VFs enabled and in use"""
    return crossver_test(f'crossver-{BASE}-from-upstream', 'upstream',
                         to_peer=False)


@needs('upstream-wire-format')
def test_migrate_to_upstream():
    """this series -> unpatched 10.2.2, live, VFs enabled and in use"""
    return crossver_test(f'crossver-{BASE}-to-upstream', 'upstream',
                         to_peer=True)


@needs('upstream-wire-format')
def test_migrate_from_other_series():
    """the 10.2 series -> the 10.0 series, on pc-q35-10.0 (run once, on
    the 10.0 series)"""
    if BASE != '10.0':
        raise Skip('the 10.0 series runs it')
    return crossver_test('crossver-10.0-from-10.2', '10.2', to_peer=False)


@needs('upstream-wire-format')
def test_migrate_to_other_series():
    """the 10.0 series -> the 10.2 series, on pc-q35-10.0 (run once, on
    the 10.0 series)"""
    if BASE != '10.0':
        raise Skip('the 10.0 series runs it')
    return crossver_test('crossver-10.0-to-10.2', '10.2', to_peer=True)
