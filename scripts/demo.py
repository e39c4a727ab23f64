#!/usr/bin/env python3
"""make demo: boot the guest test bed and show what it sees."""

import os
import sys

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, os.path.join(TOP, 'tests', 'guest'))
from guestlib import boot  # noqa: E402  pylint: disable=C0413

SCENARIO = r'''
echo "=== PCI devices (domain:bus:dev.fn vendor:device class driver)"
for d in /sys/bus/pci/devices/*; do
    drv=-
    [ -e $d/driver ] && drv=$(basename "$(readlink $d/driver)")
    echo "    ${d##*/} $(cut -c3- $d/vendor):$(cut -c3- $d/device) $(cut -c3-6 $d/class) $drv"
done
echo "=== network interfaces"
for n in /sys/class/net/*; do
    [ "${n##*/}" = lo ] && continue
    echo "    ${n##*/} mac $(cat $n/address) pci $(basename "$(readlink -f $n/device/..)")"
done
'''

ARGS = ['-device', 'pcie-root-port,id=rp0,chassis=1',
        '-netdev', 'user,id=n0',
        '-device', 'virtio-net-pci,bus=rp0,netdev=n0,mac=52:54:00:00:00:01']


def main():
    print(f'demo: booting the guest under TCG ({" ".join(ARGS)})', flush=True)
    res = boot('demo', SCENARIO, args=ARGS, timeout=300)
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
