"""Composed SR-IOV virtio-net devices seen from a Linux guest.

Each test composes one or more PFs with their VFs on one PCIe root port
(compose()), boots the guest and, through sysfs, checks what the PF's
SR-IOV capability says, enables VFs with sriov_numvfs, checks that every VF
is a virtio-pci function with a virtio_net interface carrying its
configured MAC, pings through it, and disables the VFs again.

Every function has its own slirp netdev on its own subnet
(10.0.<devfn + 10>.0/24).  A VF's interface gets 10.0.S.15/24 and pings
the gateway 10.0.S.2 of its own netdev: slirp only answers ARP and ICMP for
its own subnet, so if the VF's frames went to any other netdev, the ping
would fail.
"""

from guestlib import boot

BUS = 'rp'                  # id of the PCIe root port the functions sit on
GUEST_BUS = '0000:01'       # its secondary bus as the guest numbers it
VIRTIO_NET_VF_DEVICE = '1041'


class Function:
    """One PCI function of a composition: a PF or a VF."""

    def __init__(self, devfn, pf=None, pf_index=0):
        assert 0 <= devfn < 256
        self.devfn = devfn
        self.pf = pf                    # the PF of a VF, None for a PF
        # 52:54:00:5<pf index>:<00 PF, 01 VF>:<devfn>
        role = '00' if pf is None else '01'
        self.mac = f'52:54:00:5{pf_index:x}:{role}:{devfn:02x}'
        self.netdev = f'n{devfn}'
        self.subnet = devfn + 10        # 10.0.<subnet>.0/24
        # With ARI, Linux still names a function by devfn as slot.function
        self.addr = f'{GUEST_BUS}:{devfn >> 3:02x}.{devfn & 7}'
        self.qemu_addr = f'0x{devfn >> 3:x}.0x{devfn & 7:x}'

    def args(self, extra=''):
        return ['-netdev', f'user,id={self.netdev},'
                           f'net=10.0.{self.subnet}.0/24',
                '-device', f'virtio-net-pci,bus={BUS},addr={self.qemu_addr},'
                           f'netdev={self.netdev},mac={self.mac}{extra}']


class PF(Function):
    """A PF and the VFs it adopts (at devfns VF_DEVFNS, one stride)."""

    def __init__(self, index, devfn, vf_devfns, multifunction=False):
        super().__init__(devfn, pf_index=index)
        self.id = f'pf{index}'
        self.multifunction = multifunction
        self.vfs = [Function(d, self, index) for d in vf_devfns]
        assert self.vfs, 'a PF needs VFs'
        strides = {b.devfn - a.devfn for a, b in zip(self.vfs, self.vfs[1:])}
        assert len(strides) <= 1, f'VFs {vf_devfns} are not at one stride'
        # What the SR-IOV capability must say.  With a single VF the stride
        # is not defined by the layout; the device model reports 1.
        self.offset = self.vfs[0].devfn - devfn
        self.stride = strides.pop() if strides else 1
        self.total = len(self.vfs)


def compose(layout, multifunction=False, pfs_reversed=False):
    """QEMU args and PFs for LAYOUT: a list of (pf_devfn, [vf_devfns]).

    All functions are virtio-net-pci on one pcie-root-port; the VFs come
    first on the command line (sriov-pf=pfN), then the PFs (id=pfN) in
    layout order, or in reverse with PFS_REVERSED.  MULTIFUNCTION sets
    multifunction=on on a PF at function 0 of its slot (not needed: a PF
    with VFs is made multi-function by the device model).
    """
    pfs = [PF(i, devfn, vfs, multifunction)
           for i, (devfn, vfs) in enumerate(layout)]
    devfns = [f.devfn for pf in pfs for f in [pf] + pf.vfs]
    assert len(devfns) == len(set(devfns)), f'devfn used twice: {devfns}'
    args = ['-device', f'pcie-root-port,id={BUS},chassis=1']
    for pf in pfs:
        for vf in pf.vfs:
            args += vf.args(f',sriov-pf={pf.id}')
    for pf in reversed(pfs) if pfs_reversed else pfs:
        mf = ',multifunction=on' if pf.multifunction and pf.devfn % 8 == 0 \
            else ''
        args += pf.args(f',id={pf.id}{mf}')
    return args, pfs


# Shell helpers for the scenarios (busybox sh, after guest/check.sh).
LIB = r'''
B=/sys/bus/pci/devices
nic_of_mac() {
    for d in /sys/class/net/*; do
        [ "$(cat $d/address)" = "$1" ] && { echo ${d##*/}; return 0; }
    done
    return 1
}
nic_of_pci() {
    for n in $B/$1/virtio*/net/*; do
        [ -e "$n" ] && { echo ${n##*/}; return 0; }
    done
    return 1
}
link_name() { if [ -e "$1" ]; then basename "$(readlink "$1")"; else echo none; fi; }
drv_of() { link_name $B/$1/driver; }
absent() { [ ! -e $B/$1 ]; }
no_nic_with_mac() { ! nic_of_mac $1 >/dev/null; }
count() { ls -d $@ 2>/dev/null | wc -l; }
functions_on_bus() { count $B/__BUS__:*; }

# pf_check TAG ADDR MAC TOTALVFS OFFSET STRIDE VF_DEVICE
pf_check() {
    local t=$1 a=$2 nic
    nic=$(nic_of_mac $3)
    if [ -z "$nic" ]; then fail $t-nic "no interface with MAC $3"; return; fi
    expect $t-addr "$(basename "$(readlink -f /sys/class/net/$nic/device/..)")" $a
    expect $t-driver "$(drv_of $a)" virtio-pci
    expect $t-totalvfs "$(cat $B/$a/sriov_totalvfs)" $4
    expect $t-offset "$(cat $B/$a/sriov_offset)" $5
    expect $t-stride "$(cat $B/$a/sriov_stride)" $6
    expect $t-vf-device "$(cat $B/$a/sriov_vf_device)" $7
    expect $t-numvfs "$(cat $B/$a/sriov_numvfs)" 0
    result $t-sriov "total=$(cat $B/$a/sriov_totalvfs) offset=$(cat $B/$a/sriov_offset) stride=$(cat $B/$a/sriov_stride) vf_device=$(cat $B/$a/sriov_vf_device)"
}

# set_numvfs TAG PF_ADDR N
set_numvfs() {
    check $1 sh -c "echo $3 > $B/$2/sriov_numvfs"
    expect $1-readback "$(cat $B/$2/sriov_numvfs)" $3
}

# vf_hidden TAG ADDR MAC: the VF is not (or no longer) there
vf_hidden() {
    check $1-no-pci wait_for 30 absent $2
    check $1-no-nic wait_for 10 no_nic_with_mac $3
}

# vf_check TAG PF_ADDR VF_INDEX ADDR MAC
vf_check() {
    local t=$1 pf=$2 a=$4 nic
    if ! wait_for 30 nic_of_pci $a >/dev/null; then
        fail $t-nic "no virtio_net interface under $a; bus has: $(ls -d $B/__BUS__:* | sed 's,.*/,,' | tr '\n' ' ')"
        return
    fi
    nic=$(nic_of_pci $a)
    expect $t-virtfn "$(link_name $B/$pf/virtfn$3)" $a
    expect $t-physfn "$(link_name $B/$a/physfn)" $pf
    expect $t-ids "$(cat $B/$a/vendor):$(cat $B/$a/device)" 0x1af4:0x__VFDEV__
    expect $t-driver "$(drv_of $a)" virtio-pci
    expect $t-net-driver "$(link_name /sys/class/net/$nic/device/driver)" virtio_net
    expect $t-mac "$(cat /sys/class/net/$nic/address)" $5
    # VFs have no INTx: the driver must have got MSI-X vectors
    check $t-msix [ "$(count $B/$a/msi_irqs/*)" -gt 0 ]
    result $t "$a $nic $(cat /sys/class/net/$nic/address)"
}

# retry SECONDS COMMAND...: like wait_for, but bounded by the clock, for
# commands that take time themselves (wait_for 20 ping -W 1 can take 220 s)
retry() {
    local end=$(( $(date +%s) + $1 )); shift
    while ! "$@"; do
        [ $(date +%s) -ge $end ] && return 1
        usleep 200000
    done
}
# ping_check TAG MAC SUBNET: ping slirp's gateway of the function's netdev.
# After a first failure, give the other pings less time so that a broken
# device fails the test rather than running into the boot timeout.
PING_WAIT=20
ping_check() {
    local t=$1 nic
    nic=$(nic_of_mac $2)
    if [ -z "$nic" ]; then fail $t "no interface with MAC $2"; return; fi
    ip addr add 10.0.$3.15/24 dev $nic 2>/dev/null   # may be there already
    ip link set $nic up
    if retry $PING_WAIT ping -q -c 1 -W 1 -I $nic 10.0.$3.2 >/dev/null 2>&1; then
        pass $t "$nic 10.0.$3.2"
    else
        fail $t "$nic: no answer from 10.0.$3.2 (gateway of the netdev on 10.0.$3.0/24)"
        PING_WAIT=3
    fi
}
'''.replace('__BUS__', GUEST_BUS).replace('__VFDEV__', VIRTIO_NET_VF_DEVICE)


class Scenario:
    """Builds the guest scenario for a composition, step by step."""

    def __init__(self, pfs):
        self.pfs = pfs
        self.lines = [LIB]
        self.enabled = {pf.id: 0 for pf in pfs}

    def sh(self, line):
        self.lines.append(line)

    def bus_count(self, tag):
        """The bus has exactly the PFs and the enabled VFs."""
        n = len(self.pfs) + sum(self.enabled.values())
        self.sh(f'expect {tag}-functions-on-bus "$(functions_on_bus)" {n}')

    def pf_check(self, pf, ping=True):
        """The PF's SR-IOV capability matches the composition; no VF shows."""
        t = pf.id
        self.sh(f'pf_check {t} {pf.addr} {pf.mac} {pf.total} {pf.offset} '
                f'{pf.stride} {VIRTIO_NET_VF_DEVICE}')
        for i, vf in enumerate(pf.vfs):
            self.sh(f'vf_hidden {t}-vf{i}-before {vf.addr} {vf.mac}')
        if ping:
            self.sh(f'ping_check {t}-ping {pf.mac} {pf.subnet}')

    def enable(self, pf, n, ping=True):
        """Enable N VFs of PF: exactly the first N appear, and work."""
        t = f'{pf.id}-numvfs{n}'
        self.sh(f'set_numvfs {t} {pf.addr} {n}')
        self.enabled[pf.id] = n
        for i, vf in enumerate(pf.vfs[:n]):
            self.sh(f'vf_check {t}-vf{i} {pf.addr} {i} {vf.addr} {vf.mac}')
        for i, vf in enumerate(pf.vfs[n:], n):
            self.sh(f'vf_hidden {t}-vf{i} {vf.addr} {vf.mac}')
        self.sh(f'expect {t}-virtfns "$(count {"$B/" + pf.addr}/virtfn*)" '
                f'{n}')
        self.bus_count(t)
        self.sh(f'result {t}-msi-irqs "$(grep -c PCI-MSI /proc/interrupts)"')
        if ping:
            # The PF still works next to its VFs (no BAR overlap etc.)
            self.sh(f'ping_check {t}-pf-ping {pf.mac} {pf.subnet}')
            for i, vf in enumerate(pf.vfs[:n]):
                if ping is True or i in ping:
                    self.sh(f'ping_check {t}-vf{i}-ping {vf.mac} {vf.subnet}')

    def disable(self, pf):
        """echo 0: every VF's PCI device and interface goes away."""
        t = f'{pf.id}-disable'
        self.sh(f'set_numvfs {t} {pf.addr} 0')
        self.enabled[pf.id] = 0
        for i, vf in enumerate(pf.vfs):
            self.sh(f'vf_hidden {t}-vf{i} {vf.addr} {vf.mac}')
        self.sh(f'expect {t}-virtfns "$(count {"$B/" + pf.addr}/virtfn*)" 0')
        self.bus_count(t)

    def text(self):
        return '\n'.join(self.lines) + '\n'


def run_counts(name, layout, counts, ping=True, smp=1, timeout=300,
               memory=512):
    """Boot LAYOUT (one PF) and set sriov_numvfs to each of COUNTS in turn."""
    args, pfs = compose(layout)
    s = Scenario(pfs)
    s.pf_check(pfs[0])
    for n in counts:
        if n:
            s.enable(pfs[0], n, ping)
        else:
            s.disable(pfs[0])
    return boot(name, s.text(), args=args, timeout=timeout, smp=smp,
                memory=memory)


def test_sriov_1vf():
    return run_counts('sriov-1vf', [(0, [1])], [1, 0])


def test_sriov_3vfs_reenable():
    """3 VFs; disable; re-enable only 2 of them; disable."""
    return run_counts('sriov-3vfs', [(0, [1, 2, 3])], [3, 0, 2, 0])


def test_sriov_7vfs():
    return run_counts('sriov-7vfs', [(0, list(range(1, 8)))], [7, 0])


def test_sriov_32vfs():
    """32 VFs at devfns 1..32: with ARI they span slots 0 to 4."""
    return run_counts('sriov-32vfs', [(0, list(range(1, 33)))], [32, 0],
                      smp=1)


def two_pfs(name, **kw):
    """PF0 at devfn 0 with VFs at 2, 4, 6; PF1 at 1 with VFs at 3, 5, 7."""
    args, pfs = compose([(0, [2, 4, 6]), (1, [3, 5, 7])], **kw)
    s = Scenario(pfs)
    pf0, pf1 = pfs
    for pf in pfs:
        s.pf_check(pf)
    # Each PF enables only its own VFs
    s.enable(pf0, 3)
    for i, vf in enumerate(pf1.vfs):
        s.sh(f'vf_hidden pf1-vf{i}-while-pf0-on {vf.addr} {vf.mac}')
    s.enable(pf1, 3)
    s.disable(pf0)
    for i, vf in enumerate(pf1.vfs):
        s.sh(f'vf_check pf1-vf{i}-after-pf0-off {pf1.addr} {i} {vf.addr} '
             f'{vf.mac}')
    s.disable(pf1)
    return boot(name, s.text(), args=args, timeout=300)


def test_sriov_two_pfs():
    """Two interleaved PFs, PF0 (devfn 0) first, without multifunction=on."""
    return two_pfs('sriov-two-pfs')


def test_sriov_two_pfs_pf1_first():
    """The same with PF1 (devfn 1) realized before PF0 (devfn 0): the
    guest must still find both through the ARI Next Function chain."""
    return two_pfs('sriov-two-pfs-pf1-first', pfs_reversed=True)
