"""VFs of other virtio types than virtio-net.

A virtio-blk PF with two virtio-blk VFs on a root port, each function on a
disk image of its own whose first sector says whose it is.  The guest
finds the PF (virtio-blk's modern device ID 0x1042, with an SR-IOV
capability), enables both VFs, checks that virtio_blk binds them, and
reads the first sector of every disk: each of the three images must be
seen exactly once, so the data the guest reads through each VF comes
from that VF's own backend.
"""

import os
import tempfile

from guestlib import boot, needs

SIGNS = ['qemu-sriov-disk-pf', 'qemu-sriov-disk-vf1', 'qemu-sriov-disk-vf2']

SCENARIO = r'''
B=/sys/bus/pci/devices
pf=""
for d in $B/*; do
    if [ "$(cat $d/device)" = 0x1042 ] && [ -e $d/sriov_totalvfs ]; then
        pf=${d##*/}
    fi
done
check pf-found [ -n "$pf" ]
expect pf-totalvfs "$(cat $B/$pf/sriov_totalvfs)" 2
expect pf-driver "$(basename "$(readlink $B/$pf/driver)")" virtio-pci
check enable sh -c "echo 2 > $B/$pf/sriov_numvfs"
check three-disks wait_for 20 sh -c '[ "$(ls -d /sys/block/vd* | wc -l)" = 3 ]'
for vf in $B/$pf/virtfn*; do
    expect "vf-$(readlink $vf | sed 's/.*://')-driver" \
        "$(basename "$(readlink $vf/driver)")" virtio-pci
done
signs=""
for d in /sys/block/vd*; do
    signs="$signs $(dd if=/dev/${d##*/} bs=64 count=1 2>/dev/null | tr -dc 'a-z0-9-')"
done
result signs $signs
for s in __SIGNS__; do
    expect "disk-$s" "$(echo $signs | tr ' ' '\n' | grep -cx $s)" 1
done
check disable sh -c "echo 0 > $B/$pf/sriov_numvfs"
expect one-disk "$(ls -d /sys/block/vd* | wc -l)" 1
'''


@needs('any-type')
def test_virtio_blk_vfs():
    with tempfile.TemporaryDirectory(prefix='sriov-blk-') as tmp:
        args = ['-device', 'pcie-root-port,id=rp,chassis=1']
        for fn, sign in reversed(list(enumerate(SIGNS))):
            img = os.path.join(tmp, f'disk{fn}.img')
            with open(img, 'wb') as f:
                f.write(sign.encode().ljust(1 << 20, b'\0'))
            role = ',id=pf0' if fn == 0 else ',sriov-pf=pf0'
            args += ['-blockdev', f'driver=file,filename={img},'
                                  f'node-name=f{fn}',
                     '-blockdev', f'driver=raw,file=f{fn},node-name=d{fn}',
                     '-device', f'virtio-blk-pci,bus=rp,addr=0x0.0x{fn},'
                                f'drive=d{fn}{role}']
        return boot('types-virtio-blk',
                    SCENARIO.replace('__SIGNS__', ' '.join(SIGNS)),
                    args=args, timeout=300)
