#!/usr/bin/env python3
"""make demo: boot the guest test bed with a composed SR-IOV device.

One virtio-net-pci PF (id pf0, 01:00.0) with 3 VFs (01:00.1-3), composed
from ordinary -device virtio-net-pci functions with sriov-pf=pf0.  Every
function has its own slirp netdev on its own subnet 10.0.<devfn + 10>.0/24
and its own MAC.  The guest shows the PF's SR-IOV sysfs attributes,
enables the VFs, lists the PCI devices and NICs, pings each netdev's
gateway through its VF and disables the VFs again.
"""

import os
import sys

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, os.path.join(TOP, 'tests', 'guest'))
# pylint: disable=C0413
from guestlib import boot  # noqa: E402
from test_sriov import compose  # noqa: E402

NUM_VFS = 3

SCENARIO = r'''
B=/sys/bus/pci/devices
PF=__PF__
list_pci() {
    printf '    %-13s %-10s %-5s %-12s %s\n' address vend:dev class driver role
    for d in $B/*; do
        drv=-; role=
        [ -e $d/driver ] && drv=$(basename "$(readlink $d/driver)")
        [ -e $d/sriov_totalvfs ] && role="SR-IOV PF, $(cat $d/sriov_numvfs) VFs enabled"
        [ -e $d/physfn ] && role="VF of $(basename "$(readlink $d/physfn)")"
        printf '    %-13s %-10s %-5s %-12s %s\n' ${d##*/} \
            "$(cut -c3- $d/vendor):$(cut -c3- $d/device)" \
            "$(cut -c3-6 $d/class)" "$drv" "$role"
    done
}
list_nics() {
    printf '    %-6s %-19s %s\n' nic mac "pci function"
    for n in /sys/class/net/*; do
        [ "${n##*/}" = lo ] && continue
        printf '    %-6s %s   %s\n' ${n##*/} "$(cat $n/address)" \
            "$(basename "$(readlink -f $n/device/..)")"
    done
}
nic_of_pci() {
    for n in $B/$1/virtio*/net/*; do
        [ -e "$n" ] && { echo ${n##*/}; return 0; }
    done
    return 1
}
ping_via() {   # ping_via PCI-ADDRESS SUBNET
    local nic t
    nic=$(nic_of_pci $1)
    ip addr add 10.0.$2.15/24 dev $nic
    ip link set $nic up
    i=0
    while [ $i -lt 20 ]; do
        t=$(ping -c 1 -W 1 -I $nic 10.0.$2.2 2>/dev/null | sed -n 's/.*time=//p')
        [ -n "$t" ] && break
        i=$((i + 1)); usleep 200000
    done
    if [ -n "$t" ]; then
        printf '    %-13s %-5s 10.0.%s.15 -> 10.0.%s.2 (gateway of its netdev): reply in %s\n' $1 $nic $2 $2 "$t"
    else
        printf '    %-13s %-5s 10.0.%s.15 -> 10.0.%s.2: NO REPLY\n' $1 $nic $2 $2
        fail ping-$1 "no reply through $nic"
    fi
}

echo "=== SR-IOV capability of the PF $PF (sysfs)"
for f in sriov_totalvfs sriov_offset sriov_stride sriov_vf_device sriov_numvfs; do
    printf '    %-16s %s\n' $f "$(cat $B/$PF/$f)"
done
echo "=== PCI devices before enabling VFs (the VFs are hidden)"
list_pci
echo
echo "=== echo __N__ > $B/$PF/sriov_numvfs"
echo __N__ > $B/$PF/sriov_numvfs || fail enable "writing sriov_numvfs failed"
for a in __VFS__; do
    wait_for 30 nic_of_pci $a >/dev/null || fail vf-$a "VF $a has no interface"
done
echo "=== PCI devices"
list_pci
echo "=== network interfaces"
list_nics
echo "=== ping through each VF, each to the gateway of its own slirp netdev"
for v in __VF_SUBNETS__; do
    ping_via ${v%/*} ${v#*/}
done
echo
echo "=== echo 0 > $B/$PF/sriov_numvfs"
echo 0 > $B/$PF/sriov_numvfs || fail disable "writing sriov_numvfs failed"
for a in __VFS__; do
    wait_for 30 [ ! -e $B/$a ] || fail vf-$a-gone "VF $a still there"
done
echo "=== PCI devices"
list_pci
echo "=== network interfaces"
list_nics
'''


def main():
    args, pfs = compose([(0, list(range(1, NUM_VFS + 1)))])
    pf = pfs[0]
    scenario = (SCENARIO.replace('__PF__', pf.addr)
                .replace('__N__', str(NUM_VFS))
                .replace('__VFS__', ' '.join(vf.addr for vf in pf.vfs))
                .replace('__VF_SUBNETS__', ' '.join(f'{vf.addr}/{vf.subnet}'
                                                    for vf in pf.vfs)))
    print('demo: an SR-IOV virtio-net PF with 3 VFs, composed from '
          'virtio-net-pci functions:')
    print('    qemu-system-x86_64 -machine q35 -accel tcg ... \\')
    opts = [f'{o} {v}' for o, v in zip(args[::2], args[1::2])]
    print(' \\\n'.join(f'        {o}' for o in opts))
    print('demo: booting the guest under TCG', flush=True)
    res = boot('demo', scenario, args=args, timeout=300)
    with open(res.log, encoding='utf-8', errors='replace') as f:
        show = False
        for line in f:
            if line.startswith('==='):
                show = True
            if line.startswith('SCENARIO-DONE'):
                break
            if show:
                print(line.rstrip())
    if res.error or res.rc:
        print(f'demo: failed: {res.summary()}')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
