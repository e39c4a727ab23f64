"""Lifecycle of a composed SR-IOV device in a Linux guest (issue 5):
reboot and system_reset, hot-unplug of the PF, migration, hot-plug.

Every test composes one PF with three VFs on a pcie-root-port
(test_sriov.compose(), the VFs with ids pf0vf0..pf0vf2), enables the VFs in
the guest and pings through each VF to the gateway of the VF's own slirp
netdev (test_sriov's ping_check), so that the traffic must have gone
through that VF.  Then the host acts while the guest waits (interactive.py:
the scenario's ``host ACTION`` steps), and the guest checks what it sees
afterwards and pings again (after a migration with the neighbour cache
flushed, see ping_fresh).

The hot-plug tests (test_hotplug_acpi, test_hotplug_native,
test_migrate_after_hotplug) boot with the empty root port only, and the
host hot-plugs the same composition with netdev_add and device_add: the
VFs first, then the PF (hotplug_steps()).  The host checks query-pci's
sriov members (the VFs waiting for their PF, then the PF's capability and
the VFs' state) and the PCI_SRIOV_VFS_CHANGED event.  With native PCIe
hotplug nothing more than with ACPI hotplug was needed: the windows that
SeaBIOS reserves on the empty root port (2 MiB memory, 2 MiB
prefetchable) hold the PF's and the VFs' BARs, also without pci=realloc.

Reads of the PF's SR-IOV registers (NumVFs, VF Enable) and of a VF's class
code go to config space through sysfs, that is to the device model, not to
the guest kernel's copy: after a migration they show what the destination
QEMU has.
"""

import re
import time

import interactive
from guestlib import needs
from interactive import HostError, NO_REPLY
from test_sriov import compose, Scenario

LAYOUT = [(0, [1, 2, 3])]
# Native PCIe hotplug on the root port instead of q35's ACPI PCI hotplug
NATIVE_HOTPLUG = ['-global',
                  'ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off']

# Shell helpers on top of test_sriov's (busybox sh).
LC_LIB = r'''
# phase NAME: prefix the names of the following checks with NAME-
phase() { PHASE=$1-; }
pass() { echo "CHECK $PHASE$1 PASS${2:+ $2}"; }
fail() { echo "CHECK $PHASE$1 FAIL${2:+ $2}"; FAILED=1; }
# cfg_dword/cfg_word ADDR OFFSET: a config space register of the device
cfg_dword() { set -- $(od -An -tx4 -j $2 -N 4 $B/$1/config); echo $((0x$1)); }
cfg_word() { set -- $(od -An -tx2 -j $2 -N 2 $B/$1/config); echo $((0x$1)); }
# sriov_cap ADDR: offset of the SR-IOV extended capability (ID 0x10)
sriov_cap() {
    local off=256 h n=0
    while [ $off -ge 256 ] && [ $n -lt 64 ]; do
        h=$(cfg_dword $1 $off)
        [ $((h & 0xffff)) -eq 16 ] && { echo $off; return 0; }
        off=$(( (h >> 20) & 0xffc )); n=$((n + 1))
    done
    return 1
}
# sriov_hw TAG PF_ADDR NUMVFS VF_ENABLE: the PF's SR-IOV registers
sriov_hw() {
    local cap ctrl num
    if ! cap=$(sriov_cap $2); then
        fail $1 "no SR-IOV capability in the config space of $2"; return
    fi
    ctrl=$(cfg_word $2 $((cap + 8))); num=$(cfg_word $2 $((cap + 16)))
    expect $1 "NumVFs=$num VFEnable=$((ctrl & 1))" "NumVFs=$3 VFEnable=$4"
}
# vf_hw TAG ADDR: the enabled VF's config space answers (class code 020000,
# a network controller); a hidden VF reads as all ones
vf_hw() {
    if [ ! -e $B/$2/config ]; then fail $1 "no PCI device $2"; return; fi
    expect $1 "class=$(printf %06x $(( $(cfg_dword $2 8) >> 8 )))" class=020000
}
# ping_fresh TAG MAC NET: ping_check with the interface's neighbour cache
# flushed first.  After a migration the guest still has the MAC of the
# gateway NET.2 in its cache, and a slirp netdev answers an ICMP echo sent
# to it for another subnet's gateway: only ARP shows which netdev is behind
# the interface now (slirp answers ARP for its own subnet only).
ping_fresh() {
    local nic
    nic=$(nic_of_mac $2) && ip neigh flush dev $nic
    ping_check "$@"
}
# bg_ping NAME MAC NET: ping NET.2 through the interface with MAC in the
# background, an echo every 0.2 s, a line "ok" or "lost" each in /tmp/bg-NAME
bg_ping() {
    local nic
    if ! nic=$(nic_of_mac $2); then
        fail bg-ping-$1 "no interface with MAC $2"; return
    fi
    while :; do
        if ping -c 1 -W 1 -I $nic $3.2 >/dev/null 2>&1; then echo ok
        else echo lost; fi
        usleep 200000
    done > /tmp/bg-$1 &
    BG_PIDS="$BG_PIDS $!"
}
# bg_resumed TAG NAME: the background pings NAME get answers again: an "ok"
# after the lines logged so far
bg_resumed() {
    local n
    n=$(wc -l < /tmp/bg-$2)
    if wait_for 20 sh -c "tail -n +$((n + 1)) /tmp/bg-$2 | grep -q ok"; then
        pass $1
    else
        fail $1 "no answer to the background pings of $2 for 20 s"
    fi
}
# bg_stop: stop the background pings; how many were answered, how many lost
bg_stop() {
    local f
    kill $BG_PIDS 2>/dev/null; BG_PIDS=
    for f in /tmp/bg-*; do
        result ${f#/tmp/} "ok=$(grep -c ok $f) lost=$(grep -c lost $f)"
    done
}
# nic_up TAG MAC: the interface with MAC is up, with carrier.  The carrier
# is the driver's view of the device's link status and reads at once; the
# operational state follows it through the kernel's link watch, which acts
# on a new interface up to a second later (guest time, which stands still
# while a migration has the VM stopped): give it 5 s.
nic_up() {
    local nic f
    nic=$(nic_of_mac $2) || { fail $1 "no interface with MAC $2"; return; }
    f=/sys/class/net/$nic
    wait_for 5 grep -qx up $f/operstate
    expect $1 "$nic $(cat $f/operstate) carrier=$(cat $f/carrier)" \
        "$nic up carrier=1"
}
'''


def lc_compose(layout=None, order='vfs-first'):
    """compose() with an id on every VF: pf<i>vf<j> (DEVICE_DELETED and
    error messages name them by it)."""
    args, pfs = compose(layout or LAYOUT, order=order)
    for pf in pfs:
        for j, vf in enumerate(pf.vfs):
            vf.id = f'{pf.id}vf{j}'
            old = f',mac={vf.mac},sriov-pf='
            args = [a.replace(old, f',mac={vf.mac},id={vf.id},sriov-pf=')
                    for a in args]
            assert any(f'id={vf.id},' in a for a in args), vf.id
    return args, pfs


def scenario(pfs):
    s = Scenario(pfs)
    s.sh(LC_LIB)
    return s


def enabled_state(s, pf, tag, ping=True):
    """After a host action: PF and all VFs as they were (VFs enabled), in
    the kernel and in the device model, and traffic through each."""
    n = len(pf.vfs)
    s.enabled[pf.id] = n
    s.sh(f'expect {tag}-numvfs "$(cat $B/{pf.addr}/sriov_numvfs)" {n}')
    s.sh(f'sriov_hw {tag}-pf-regs {pf.addr} {n} 1')
    for i, vf in enumerate(pf.vfs):
        s.sh(f'vf_check {tag}-vf{i} {pf.addr} {i} {vf.addr} {vf.mac}')
        s.sh(f'vf_hw {tag}-vf{i}-config {vf.addr}')
        s.sh(f'nic_up {tag}-vf{i}-up {vf.mac}')
    s.bus_count(tag)
    if ping:
        s.sh(f'ping_fresh {tag}-pf-ping {pf.mac} {pf.net}')
        for i, vf in enumerate(pf.vfs):
            s.sh(f'ping_fresh {tag}-vf{i}-ping {vf.mac} {vf.net}')


def disabled_state(s, pf, tag):
    """No VF: not in the kernel, not in the device model."""
    s.enabled[pf.id] = 0
    s.sh(f'expect {tag}-numvfs "$(cat $B/{pf.addr}/sriov_numvfs)" 0')
    s.sh(f'sriov_hw {tag}-pf-regs {pf.addr} 0 0')
    for i, vf in enumerate(pf.vfs):
        s.sh(f'vf_hidden {tag}-vf{i} {vf.addr} {vf.mac}')
    s.sh(f'expect {tag}-virtfns "$(count $B/{pf.addr}/virtfn*)" 0')
    s.bus_count(tag)


def qemu_clean(res, label=''):
    """The QEMU LABEL ('' the first) exited with status 0 and printed
    nothing (no error, no warning)."""
    for m in res.session.machines:
        if m.tag == label:
            res.checks.append((f'host:{m.label}-exit-status',
                               m.exitcode == 0, f'status {m.exitcode}'))
            res.checks.append((f'host:{m.label}-no-output', not m.output,
                               repr(m.output[-2000:])))
            return
    res.checks.append((f'host:{label}-exit-status', False, 'no such QEMU'))


# --- Reboot --------------------------------------------------------------

def reboot_test(name, how):
    """Enable the VFs and ping through each; reboot (HOW: 'guest' runs
    reboot -f, 'host' has the host do system_reset); after the reboot the
    PF has NumVFs 0 and no VF is there, then the guest enables the VFs
    again and pings through each.

    (Linux itself clears VF Enable and NumVFs when it probes a PF, and
    with ARI it does not scan the function numbers of VFs, so the guest
    cannot tell whether the reset itself hid the VFs; virtio-sriov-test's
    reset cases check the registers.  Here the point is that the guest
    finds the device as after a first boot and that it works again.)
    """
    args, pfs = lc_compose()
    pf = pfs[0]
    s = scenario(pfs)
    s.sh('host boot || return 1; BOOT=$HOST_REPLY; result boot "$BOOT"')
    s.sh('if [ "$BOOT" = 1 ]; then')
    s.sh('phase boot1')
    s.pf_check(pf, ping=False)
    s.enable(pf, 3)
    s.sh(f'sriov_hw before-reboot-pf-regs {pf.addr} 3 1')
    if how == 'guest':
        s.sh('echo "rebooting: reboot -f"; sync; reboot -f')
    else:
        s.sh('host system_reset')
    s.sh('sleep 60; fail reboot "no reboot within 60 s"')
    s.sh('elif [ "$BOOT" = 2 ]; then')
    s.sh('phase boot2')
    s.enabled[pf.id] = 0
    s.pf_check(pf)                      # sriov_numvfs 0, no VF, PF pings
    disabled_state(s, pf, 'after-reboot')
    s.enable(pf, 3)                     # and pings through each VF
    s.sh(f'sriov_hw after-reboot-enabled-pf-regs {pf.addr} 3 1')
    s.sh('else fail boot "unexpected boot $BOOT"; fi')

    def handler(sess, action, _args):
        if action == 'system_reset':
            sess.current.cmd('system_reset')
            return NO_REPLY
        raise HostError(f'unknown action {action}')

    res = interactive.boot(name, s.text(), handler, args=args, timeout=300,
                           reboot=True)
    qemu_clean(res)
    boots = res.results.get('boot', [])
    res.checks.append(('host:two-boots', boots == ['1', '2'],
                       f'boots seen by the scenario: {boots}'))
    return res


def test_reboot_guest():
    """reboot -f in the guest with VFs enabled"""
    return reboot_test('lifecycle-reboot-guest', 'guest')


def test_reboot_system_reset():
    """QMP system_reset with VFs enabled"""
    return reboot_test('lifecycle-reboot-system-reset', 'host')


# --- Hot-unplug ----------------------------------------------------------

def bus_devices(m, port='rp'):
    """The devices (query-pci's PciDeviceInfo) on the secondary bus of
    PORT."""
    for bus in m.cmd('query-pci'):
        for dev in bus['devices']:
            if dev.get('qdev_id') == port:
                return dev.get('pci_bridge', {}).get('devices', [])
    raise HostError(f'query-pci lists no device {port}')


def bus_functions(m, port='rp'):
    """The functions query-pci lists on the secondary bus of PORT."""
    return [(d['slot'], d['function'], d.get('qdev_id', ''))
            for d in bus_devices(m, port)]


def new_events(sess):
    """All QMP events of the current QEMU since the last clear_events(),
    oldest first."""
    evs = sess.data.setdefault('events', [])
    evs += sess.current.events()
    return evs


def clear_events(sess):
    new_events(sess).clear()


def unplug_pf(sess, pf_id, ids, tag='pf-unplug'):
    """device_del PF_ID; wait for DEVICE_DELETED of all of IDS (the PF and
    its VFs); query-pci shows the port's bus empty."""
    m = sess.current
    m.cmd('device_del', id=pf_id)
    seen = set()

    def all_deleted():
        for e in new_events(sess):
            if e['event'] == 'DEVICE_DELETED':
                seen.add(e['data'].get('device') or e['data'].get('path'))
        return set(ids) <= seen
    try:
        sess.wait_until('DEVICE_DELETED of ' + ', '.join(ids), all_deleted,
                        90)
    finally:
        sess.check(f'{tag}-device-deleted', set(ids) <= seen,
                   f'DEVICE_DELETED for {sorted(seen)}, want {sorted(ids)}')
    left = bus_functions(m)
    sess.expect(f'{tag}-bus-empty', left, [])
    return 'ok'


def unplug_test(name, native):
    """Enable the VFs and ping through each.  device_del of a VF is refused
    with an error that names its PF, and the VF keeps working.  device_del
    of the PF: the guest, notified through the root port (ACPI hotplug, or
    with NATIVE PCIe native hotplug), removes the PF and its VFs; QEMU
    reports DEVICE_DELETED for all four; query-pci shows the port's bus
    empty.  Then QEMU exits with status 0 and prints nothing."""
    args, pfs = lc_compose()
    pf = pfs[0]
    vf = pf.vfs[1]
    s = scenario(pfs)
    s.pf_check(pf, ping=False)
    s.enable(pf, 3)
    s.sh(f'host unplug-vf {vf.id} || return 1')
    # The refused unplug changed nothing: the VF is there and works
    s.sh(f'vf_check after-vf-unplug-vf1 {pf.addr} 1 {vf.addr} {vf.mac}')
    s.sh(f'vf_hw after-vf-unplug-vf1-config {vf.addr}')
    s.sh(f'ping_check after-vf-unplug-vf1-ping {vf.mac} {vf.net}')
    s.bus_count('after-vf-unplug')
    s.sh('host unplug-pf pf0 || return 1')
    for f in [pf] + pf.vfs:
        t = f'after-pf-unplug-{"pf" if f is pf else f.id}'
        s.sh(f'check {t}-no-pci wait_for 30 absent {f.addr}')
        s.sh(f'check {t}-no-nic wait_for 10 no_nic_with_mac {f.mac}')
    s.sh('expect after-pf-unplug-functions-on-bus "$(functions_on_bus)" 0')
    # How the guest was told: pciehp logs the slot's events, acpiphp does
    # not (and with ACPI hotplug the port has no native hotplug for pciehp)
    s.sh('result slot-messages "$(dmesg | grep "Slot(" | tail -n 3 | '
         'tr "\\n" "|")"')
    if native:
        s.sh('check notified-by-pciehp sh -c '
             '"dmesg | grep -q \'pciehp: Slot(0): Attention button pressed\'"')
    else:
        s.sh('expect notified-by-acpi-no-pciehp "$(dmesg | grep -c pciehp)" 0')

    ids = [pf.id] + [v.id for v in pf.vfs]

    def handler(sess, action, arg):
        m = sess.current
        if action == 'unplug-vf':
            before = bus_functions(m)
            resp = m.qmp('device_del', id=arg)
            err = resp.get('error', {}).get('desc')
            sess.check('vf-unplug-refused', err is not None,
                       f'device_del {arg}: {err or resp}')
            if err is not None:
                sess.check('vf-unplug-error-names-pf',
                           re.search(r"\bpf0\b", err) and
                           re.search(r'\bVF\b|SR-IOV|sriov', err, re.I),
                           err)
            time.sleep(3)
            deleted = [e for e in m.events()
                       if e['event'] == 'DEVICE_DELETED']
            sess.check('vf-unplug-no-device-deleted', not deleted,
                       str(deleted))
            after = bus_functions(m)
            sess.expect('vf-unplug-bus-unchanged', after, before)
            return 'ok'
        if action == 'unplug-pf':
            return unplug_pf(sess, arg, ids)
        raise HostError(f'unknown action {action}')

    res = interactive.boot(name, s.text(), handler,
                           args=args + (NATIVE_HOTPLUG if native else []),
                           timeout=300)
    qemu_clean(res)
    return res


@needs('hotplug')
def test_unplug_acpi():
    """PF unplug through ACPI PCI hotplug (q35's default)"""
    return unplug_test('lifecycle-unplug-acpi', native=False)


@needs('hotplug')
def test_unplug_native():
    """PF unplug through native PCIe hotplug of the root port"""
    return unplug_test('lifecycle-unplug-native', native=True)


# --- Hot-plug ------------------------------------------------------------

# The guest boots with the root port only; the composed device (LAYOUT,
# with the ids, MACs and netdevs of lc_compose()) is hot-plugged.
EMPTY_PORT = ['-device', 'pcie-root-port,id=rp,chassis=1']
ROOT_PORT = '0000:00:01.0'          # the port as the guest numbers it
HOTPLUG_CYCLES = 3

# Shell helpers for hot-plug (busybox sh).
HP_LIB = r'''
has_nic() { nic_of_mac $1 >/dev/null; }
# port_windows: the root port's bridge windows (sysfs resource lines 13-15)
port_windows() {
    sed -n '14,16p' $B/__PORT__/resource | tr '\n' ' '
}
'''.replace('__PORT__', ROOT_PORT)


def pf_sriov_want(pf, n):
    """What query-pci's sriov member of PF must say with N VFs enabled."""
    return {'role': 'pf', 'total-vfs': pf.total, 'num-vfs': n,
            'vf-enable': n > 0, 'first-vf-offset': pf.offset,
            'vf-stride': pf.stride, 'vf-device-id': 0x1041}


def check_sriov_info(sess, tag, pf, n, skip=()):
    """query-pci: the PF's and each VF's sriov member with N VFs enabled
    (for the PF only the members that pf_sriov_want() names, less SKIP)."""
    info = {d.get('qdev_id'): d.get('sriov')
            for d in bus_devices(sess.current)}
    want = {k: v for k, v in pf_sriov_want(pf, n).items() if k not in skip}
    got = info.get(pf.id) or {}
    sess.expect(f'{tag}-query-pci-pf', {k: got.get(k) for k in want}, want)
    for i, vf in enumerate(pf.vfs):
        sess.expect(f'{tag}-query-pci-{vf.id}', info.get(vf.id),
                    {'role': 'vf', 'pf-device': pf.id,
                     'pf-qom-path': f'/machine/peripheral/{pf.id}',
                     'vf-number': i,
                     'state': 'enabled' if i < n else 'disabled'})


def hotplug_function(m, f, **props):
    """netdev_add F's user netdev, device_add F on the port (as compose()
    would put it on the command line)."""
    m.cmd('netdev_add', type='user', id=f.netdev, net=f'{f.net}.0/24')
    m.cmd('device_add', driver='virtio-net-pci', bus='rp', addr=f.qemu_addr,
          netdev=f.netdev, mac=f.mac, id=f.id, **props)


def hotplug_vfs(sess, pf, tag, try_migrate=False):
    """device_add PF's VFs (the port's bus empty before): query-pci lists
    them, waiting for their PF, and migration is blocked by each.  With
    TRY_MIGRATE, a migrate command is refused ('waits for its PF') and the
    guest runs on."""
    m = sess.current
    clear_events(sess)
    sess.expect(f'{tag}-bus-empty-before', bus_functions(m), [])
    for vf in pf.vfs:
        hotplug_function(m, vf, **{'sriov-pf': pf.id})
    sess.expect(f'{tag}-vfs-on-bus', bus_functions(m),
                [(vf.devfn >> 3, vf.devfn & 7, vf.id) for vf in pf.vfs])
    info = {d.get('qdev_id'): d.get('sriov') for d in bus_devices(m)}
    for vf in pf.vfs:
        sess.expect(f'{tag}-query-pci-{vf.id}-waiting', info.get(vf.id),
                    {'role': 'vf', 'state': 'waiting', 'pf-device': pf.id})
    blocked = m.cmd('query-migrate').get('blocked-reasons', [])
    sess.check(f'{tag}-migration-blocked-by-each-vf',
               all(any(f"'{vf.id}'" in r and 'waits for its PF' in r
                       for r in blocked) for vf in pf.vfs), blocked)
    if try_migrate:
        uri = f'unix:{sess.tmp}/blocked-migration.sock'
        resp = m.qmp('migrate', uri=uri)
        err = resp.get('error', {}).get('desc')
        sess.check(f'{tag}-migrate-refused',
                   err is not None and 'waits for its PF' in err,
                   f'migrate: {err or resp}')
        time.sleep(1)
        st = m.cmd('query-migrate').get('status')
        sess.check(f'{tag}-no-migration-started', st in (None, 'none'),
                   f'query-migrate status {st}')
        sess.expect(f'{tag}-still-running',
                    m.cmd('query-status').get('status'), 'running')
    return 'ok'


def hotplug_pf(sess, pf, tag):
    """device_add the PF: it adopts its VFs (query-pci: TotalVFs, offset,
    stride, the VFs disabled) and migration is no longer blocked.

    NumVFs is not checked here: the guest may already be probing the PF,
    and Linux's sriov_init() writes every NumVFs from TotalVFs down to 0
    to find the VFs' bus range.  pf_found() checks it once the guest is
    done."""
    m = sess.current
    hotplug_function(m, pf)
    sess.expect(f'{tag}-functions-on-bus', bus_functions(m),
                [(f.devfn >> 3, f.devfn & 7, f.id) for f in [pf] + pf.vfs])
    check_sriov_info(sess, tag, pf, 0, skip=('num-vfs',))
    blocked = m.cmd('query-migrate').get('blocked-reasons', [])
    sess.expect(f'{tag}-migration-not-blocked', blocked, [])
    return 'ok'


def vfs_enabled(sess, pf, n, tag):
    """After the guest enabled N VFs: one PCI_SRIOV_VFS_CHANGED for PF
    with num-vfs N since the VFs were added, and query-pci shows them
    enabled."""
    def changes():
        return [e['data'] for e in new_events(sess)
                if e['event'] == 'PCI_SRIOV_VFS_CHANGED']
    want = {'device': pf.id, 'qom-path': f'/machine/peripheral/{pf.id}',
            'num-vfs': n}
    try:
        sess.wait_until(f'PCI_SRIOV_VFS_CHANGED {want}',
                        lambda: want in changes(), 10)
    except HostError:
        pass
    sess.expect(f'{tag}-vfs-changed-event', changes(), [want])
    check_sriov_info(sess, tag, pf, n)
    return 'ok'


def unplug_hotplugged(sess, pf, tag):
    """unplug_pf(), then netdev_del the netdevs of the PF and its VFs (the
    next cycle adds them again)."""
    unplug_pf(sess, pf.id, [pf.id] + [vf.id for vf in pf.vfs], tag)
    for f in [pf] + pf.vfs:
        sess.current.cmd('netdev_del', id=f.netdev)
    return 'ok'


def hotplug_handler(pf, try_migrate=False, also=None):
    """The host side of hotplug_steps(): actions hotplug-vfs, hotplug-pf,
    vfs-enabled and unplug-pf, each with the cycle as argument (check
    names hotplugN-...); ALSO(sess, action, arg) for other actions."""
    def handler(sess, action, arg):
        tag = f'hotplug{arg}'
        if action == 'hotplug-vfs':
            return hotplug_vfs(sess, pf, tag, try_migrate)
        if action == 'hotplug-pf':
            return hotplug_pf(sess, pf, tag)
        if action == 'pf-found':
            check_sriov_info(sess, f'{tag}-pf-found', pf, 0)
            return 'ok'
        if action == 'vfs-enabled':
            return vfs_enabled(sess, pf, len(pf.vfs), tag)
        if action == 'unplug-pf':
            return unplug_hotplugged(sess, pf, tag)
        if also:
            return also(sess, action, arg)
        raise HostError(f'unknown action {action}')
    return handler


def hotplug_steps(s, pf, cycle):
    """The guest side of a hot-plug: the host adds the VFs, which the
    guest cannot find even with a rescan; then the PF, which the guest
    finds by itself (acpiphp or pciehp), with the SR-IOV values of the
    composition; the guest enables all VFs, checks each and pings through
    the PF and each VF."""
    s.sh(f'phase cycle{cycle}')
    s.sh(f'host hotplug-vfs {cycle} || return 1')
    s.sh('echo 1 > /sys/bus/pci/rescan')
    s.sh('expect vfs-waiting-functions-on-bus "$(functions_on_bus)" 0')
    for i, vf in enumerate(pf.vfs):
        s.sh(f'check vfs-waiting-vf{i}-no-nic no_nic_with_mac {vf.mac}')
    s.sh('T0=$(date +%s)')
    s.sh(f'host hotplug-pf {cycle} || return 1')
    s.sh(f'check pf-appears wait_for 60 has_nic {pf.mac}')
    s.sh(f'result cycle{cycle}-pf-appeared-s $(( $(date +%s) - T0 ))')
    s.sh(f'result cycle{cycle}-port-windows "$(port_windows)"')
    s.sh(f'host pf-found {cycle}')
    s.enabled[pf.id] = 0
    s.pf_check(pf)
    s.enable(pf, len(pf.vfs))
    s.sh(f'sriov_hw vfs-enabled-pf-regs {pf.addr} {len(pf.vfs)} 1')
    s.sh(f'host vfs-enabled {cycle}')


def unplug_steps(s, pf, cycle):
    """The guest side of the PF's unplug: all functions go."""
    s.sh(f'phase cycle{cycle}')
    s.sh(f'host unplug-pf {cycle} || return 1')
    for f in [pf] + pf.vfs:
        t = f'after-unplug-{"pf" if f is pf else f.id}'
        s.sh(f'check {t}-no-pci wait_for 30 absent {f.addr}')
        s.sh(f'check {t}-no-nic wait_for 10 no_nic_with_mac {f.mac}')
    s.enabled[pf.id] = 0
    s.sh('expect after-unplug-functions-on-bus "$(functions_on_bus)" 0')


def notified_checks(s, native):
    """How the guest was told of the hot-plug events (see unplug_test)."""
    s.sh('phase end')
    s.sh('result slot-messages "$(dmesg | grep "Slot(" | tail -n 6 | '
         'tr "\\n" "|")"')
    s.sh('result pci-resource-messages "$(dmesg | grep -iE '
         '\'no space|failed to assign|can.t assign\' | tail -n 6 | '
         'tr "\\n" "|")"')
    if native:
        s.sh('check notified-by-pciehp sh -c '
             '"dmesg | grep -q \'pciehp.*Slot(0)\'"')
    else:
        s.sh('expect notified-by-acpi-no-pciehp "$(dmesg | grep -c pciehp)" 0')


def hotplug_test(name, native):
    """Boot with an empty root port; HOTPLUG_CYCLES times in one boot:
    hot-plug the VFs (query-pci: waiting for pf0; migration blocked; the
    guest cannot see them), then the PF (query-pci: TotalVFs 3, offset 1,
    stride 1, VFs disabled); the guest finds the PF (acpiphp, or pciehp
    with NATIVE), enables the 3 VFs, checks each and pings through the PF
    and each VF; QEMU emitted PCI_SRIOV_VFS_CHANGED (num-vfs 3) and
    query-pci shows the VFs enabled; device_del of the PF removes it and
    its VFs (DEVICE_DELETED for all four, the guest sees none), and the
    netdevs are deleted for the next cycle."""
    _, pfs = lc_compose()
    pf = pfs[0]
    s = scenario(pfs)
    s.sh(HP_LIB)
    s.sh('result boot-port-windows "$(port_windows)"')
    for cycle in range(1, HOTPLUG_CYCLES + 1):
        hotplug_steps(s, pf, cycle)
        unplug_steps(s, pf, cycle)
    notified_checks(s, native)
    res = interactive.boot(name, s.text(), hotplug_handler(pf),
                           args=EMPTY_PORT + (NATIVE_HOTPLUG if native
                                              else []),
                           timeout=480)
    qemu_clean(res)
    return res


@needs('hotplug', 'query-pci')
def test_hotplug_acpi():
    """hot-plug and unplug, three times, with ACPI PCI hotplug"""
    return hotplug_test('lifecycle-hotplug-acpi', native=False)


@needs('hotplug', 'query-pci')
def test_hotplug_native():
    """hot-plug and unplug, three times, with native PCIe hotplug"""
    return hotplug_test('lifecycle-hotplug-native', native=True)


# --- Migration -----------------------------------------------------------

MIGRATION_END = ('completed', 'failed', 'cancelled')


def migration_status(m):
    return m.cmd('query-migrate').get('status')


def prepare_migration(sess, *machines, return_path=False):
    for m in machines:
        if return_path:
            m.cmd('migrate-set-capabilities', capabilities=[
                {'capability': 'return-path', 'state': True}])
    # Without a limit: this is all local
    machines[0].cmd('migrate-set-parameters', max_bandwidth=(1 << 40))
    sess.log('migration prepared')


def wait_migration(sess, m, timeout=180):
    """Wait for the migration on M to end; its status."""
    def ended():
        st = migration_status(m)
        return st if st in MIGRATION_END else None
    return sess.wait_until(f'the end of the migration on {m.label}', ended,
                           timeout)


def wait_running(sess, m, timeout=120):
    """Wait until the destination M runs the guest."""
    def running():
        if not m.running():
            raise HostError(f'{m.label} exited: {m.finish()} '
                            f'{(m.output or "").strip()}')
        return m.cmd('query-status').get('status') == 'running'
    sess.wait_until(f'{m.label} running', running, timeout)


def migrate(sess, how, dst_args=None, dst_qemu=None):
    """Migrate the guest from the current QEMU to a new one (HOW: 'unix'
    live over a unix socket, 'file' through a file and a destination
    started afterwards), then quit the source.  The guest runs on in the
    destination, started with the run's args or DST_ARGS instead, and with
    the binary DST_QEMU instead of the run's."""
    src = sess.current
    uri_sock = f'unix:{sess.tmp}/migration.sock'
    uri_file = f'file:{sess.tmp}/migration.state'
    if how == 'unix':
        dst = sess.launch('dst', args=dst_args, extra=['-incoming', 'defer'],
                          qemu=dst_qemu)
        if dst.done:
            raise HostError(f'the destination did not start: {dst.output}')
        prepare_migration(sess, src, dst)
        dst.cmd('migrate-incoming', uri=uri_sock)
        src.cmd('migrate', uri=uri_sock)
    else:
        prepare_migration(sess, src)
        src.cmd('migrate', uri=uri_file)
    st = wait_migration(sess, src)
    info = src.cmd('query-migrate')
    sess.expect('migration-status', st, 'completed')
    if st != 'completed':
        raise HostError(f'migration {st}: {info.get("error-desc")}')
    sess.expect('source-state', src.cmd('query-status').get('status'),
                'postmigrate')
    src.finish(quit=True)
    sess.expect('source-exit-status', src.exitcode, 0)
    sess.check('source-no-output', not src.output, repr(src.output))
    if how == 'file':
        dst = sess.launch('dst', args=dst_args, extra=['-incoming', 'defer'],
                          qemu=dst_qemu)
        if dst.done:
            raise HostError(f'the destination did not start: {dst.output}')
        dst.cmd('migrate-incoming', uri=uri_file)
    wait_running(sess, dst)
    sess.expect('destination-migration-status', migration_status(dst),
                'completed')
    sess.switch(dst)
    return 'ok'


def migration_test(name, how, enabled=True):
    """Enable the VFs (with ENABLED) and ping through each; migrate (HOW,
    see migrate()) while pings through each VF go on in the background; in
    the destination the background pings get answers again, the VFs are
    still enabled, with their MACs, interfaces up, and each passes traffic
    to its own netdev (a fresh ARP lookup).  Without ENABLED the
    VFs are off during the migration, and the guest enables them in the
    destination and pings through each."""
    args, pfs = lc_compose()
    pf = pfs[0]
    s = scenario(pfs)
    s.pf_check(pf)
    if enabled:
        s.enable(pf, 3)
        s.sh(f'sriov_hw before-migration-pf-regs {pf.addr} 3 1')
        # Traffic through every VF while the guest migrates
        for i, vf in enumerate(pf.vfs):
            s.sh(f'bg_ping vf{i} {vf.mac} {vf.net}')
        for i, vf in enumerate(pf.vfs):
            s.sh(f'check before-migration-vf{i}-bg-ping '
                 f'wait_for 20 grep -q ok /tmp/bg-vf{i}')
    s.sh(f'host migrate {how} || return 1')
    if enabled:
        for i, vf in enumerate(pf.vfs):
            s.sh(f'bg_resumed after-migration-vf{i}-bg-ping vf{i}')
        s.sh('bg_stop')
        enabled_state(s, pf, 'after-migration')
    else:
        disabled_state(s, pf, 'after-migration')
        s.sh(f'ping_fresh after-migration-pf-ping {pf.mac} {pf.net}')
        s.enable(pf, 3)
        s.sh(f'sriov_hw after-migration-enabled-pf-regs {pf.addr} 3 1')

    def handler(sess, action, arg):
        if action == 'migrate':
            return migrate(sess, arg)
        raise HostError(f'unknown action {action}')

    res = interactive.boot(name, s.text(), handler, args=args, timeout=300)
    qemu_clean(res, 'dst')
    return res


def test_migrate_live():
    """live migration over a unix socket, VFs enabled"""
    return migration_test('lifecycle-migrate-live', 'unix')


def test_migrate_file():
    """migration to a file, loaded by a new QEMU, VFs enabled"""
    return migration_test('lifecycle-migrate-file', 'file')


def test_migrate_live_disabled():
    """live migration with the VFs disabled; enabled afterwards"""
    return migration_test('lifecycle-migrate-live-disabled', 'unix',
                          enabled=False)


# Destinations composed differently from the source (PF at 0, VFs at 1-3):
# (layout, what the error must say: all of these patterns; so the counts
# 3 and 2 or the strides 1 and 2, as a clear error states what differs)
BAD_DESTINATIONS = {
    'fewer-vfs': ([(0, [1, 2])], [r'\bVFs?\b', r'\b3\b', r'\b2\b']),
    'stride': ([(0, [2, 4, 6])], [r'stride', r'\b1\b', r'\b2\b']),
}


# The early check of the composition is off on the machine types, which
# keep the wire format of QEMU 10.2: both ends turn it on.
MIGRATION_CHECK = ['-global', 'pci-device.x-sriov-migration-check=on']


def bad_migration(sess, variant, return_path):
    """Migrate to a destination composed differently (BAD_DESTINATIONS):
    the destination must fail with a clear error, the source must run
    on."""
    src = sess.current
    layout, want = BAD_DESTINATIONS[variant]
    dargs, _ = lc_compose(layout)
    dargs += MIGRATION_CHECK
    dst = sess.launch(f'dst-{variant}', args=dargs,
                      extra=['-incoming', 'defer'])
    if dst.done:
        raise HostError(f'the destination did not start: {dst.output}')
    uri = f'unix:{sess.tmp}/migration-{variant}.sock'
    prepare_migration(sess, src, dst, return_path=return_path)
    dst.cmd('migrate-incoming', uri=uri)
    src.cmd('migrate', uri=uri)
    st = wait_migration(sess, src)
    info = src.cmd('query-migrate')
    sess.log(f'source migration: {st}: {info.get("error-desc")}')
    try:
        sess.wait_until('the destination to exit', lambda: not dst.running(),
                        60)
    except HostError:
        pass
    dst_running = dst.running()
    if dst_running:
        dst_state = dst.cmd('query-status').get('status')
        dst.finish(quit=True)
    else:
        dst_state = 'exited'
        dst.finish()
    out = (dst.output or '').strip()
    sess.check(f'{variant}-destination-fails', not dst_running and
               dst.exitcode not in (0, None),
               f'destination {dst_state}, exit status {dst.exitcode}: {out}')
    sess.check(f'{variant}-error-names-sriov-or-pf',
               re.search(r"SR-IOV|\bPF\b|\bpf0\b", out), out)
    sess.check(f'{variant}-error-says-what-differs',
               all(re.search(w, out, re.I) for w in want), out)
    state = src.cmd('query-status').get('status')
    sess.expect(f'{variant}-source-migration-failed', st, 'failed')
    sess.expect(f'{variant}-source-running', state, 'running')
    if state != 'running':
        # Let the guest go on on the source, to see the rest
        sess.log(f'source is {state}; cont')
        src.qmp('cont')
    return 'ok'


def bad_destination_test(name, return_path):
    """Enable the VFs and ping through each.  Migrate to a destination with
    one VF fewer, then to one with another stride: each must fail with an
    error that names SR-IOV or the PF and what differs, the source must
    keep running (query-status running, migration failed), and the guest
    pings through each VF again after each attempt."""
    args, pfs = lc_compose()
    args += MIGRATION_CHECK
    pf = pfs[0]
    s = scenario(pfs)
    s.pf_check(pf, ping=False)
    s.enable(pf, 3)
    for variant in BAD_DESTINATIONS:
        s.sh(f'host migrate-bad {variant} || return 1')
        enabled_state(s, pf, f'after-{variant}')

    def handler(sess, action, arg):
        if action == 'migrate-bad':
            return bad_migration(sess, arg, return_path)
        raise HostError(f'unknown action {action}')

    res = interactive.boot(name, s.text(), handler, args=args, timeout=300)
    # The source reports the failed migrations on stderr; it must still
    # exit normally when the guest powers off.
    src = res.session.machines[0]
    res.checks.append(('host:main-exit-status', src.exitcode == 0,
                       f'status {src.exitcode}'))
    return res


@needs('migration-checks')
def test_migrate_bad_destination():
    """differently composed destinations, without the return path: the
    destination checks the composition before RAM arrives and closes the
    stream, so the source fails the migration (write error) and runs on"""
    return bad_destination_test('lifecycle-migrate-bad-destination',
                                return_path=False)


@needs('migration-checks')
def test_migrate_bad_destination_return_path():
    """the same with the return-path capability on both sides"""
    return bad_destination_test('lifecycle-migrate-bad-destination-rp',
                                return_path=True)


# --- Migration after hot-plug ---------------------------------------------

@needs('hotplug', 'query-pci')
def test_migrate_after_hotplug():
    """Boot with an empty root port; hot-plug the VFs: while they wait for
    their PF, migrate is refused ('waits for its PF') and the guest runs
    on; hot-plug the PF, enable the VFs and ping through each; migrate
    live (unix socket), with pings through each VF in the background, to a
    destination that has the composed device on its command line, each PF
    before its VFs (compose(order='pf-first'): same ids, MACs, netdevs).
    In the destination the background pings get answers again, the VFs
    are still enabled (in the guest, its config space reads and
    query-pci), and each VF passes traffic to its own netdev."""
    _, pfs = lc_compose()
    pf = pfs[0]
    s = scenario(pfs)
    s.sh(HP_LIB)
    hotplug_steps(s, pf, 1)
    s.sh('PHASE=')
    for i, vf in enumerate(pf.vfs):
        s.sh(f'bg_ping vf{i} {vf.mac} {vf.net}')
    for i, vf in enumerate(pf.vfs):
        s.sh(f'check before-migration-vf{i}-bg-ping '
             f'wait_for 20 grep -q ok /tmp/bg-vf{i}')
    s.sh('host migrate || return 1')
    for i, vf in enumerate(pf.vfs):
        s.sh(f'bg_resumed after-migration-vf{i}-bg-ping vf{i}')
    s.sh('bg_stop')
    enabled_state(s, pf, 'after-migration')

    def migrate_composed(sess, action, _arg):
        if action != 'migrate':
            raise HostError(f'unknown action {action}')
        dargs, _ = lc_compose(order='pf-first')
        migrate(sess, 'unix', dst_args=dargs)
        sess.expect('destination-functions-on-bus',
                    bus_functions(sess.current),
                    [(f.devfn >> 3, f.devfn & 7, f.id)
                     for f in [pf] + pf.vfs])
        check_sriov_info(sess, 'destination', pf, len(pf.vfs))
        return 'ok'

    res = interactive.boot('lifecycle-migrate-after-hotplug', s.text(),
                           hotplug_handler(pf, try_migrate=True,
                                           also=migrate_composed),
                           args=EMPTY_PORT, timeout=300)
    qemu_clean(res, 'dst')
    return res
