"""The test bed itself: the guest boots, binds a virtio-net-pci NIC with
the configured MAC and passes traffic through it; also with a packed
virtqueue layout (packed=on), whose used buffers QEMU tracks in
used_elems, which it allocates only for such queues."""

from guestlib import boot

MAC = '52:54:00:12:34:56'

SCENARIO = r'''
nic=""
for d in /sys/class/net/*; do
    [ "$(cat $d/address)" = "__MAC__" ] && nic=${d##*/}
done
check nic-with-mac [ -n "$nic" ]
result nic "$nic"
drv=$(basename "$(readlink /sys/class/net/$nic/device/driver)")
expect nic-driver "$drv" virtio_net
pdrv=$(basename "$(readlink /sys/class/net/$nic/device/../driver)")
expect pci-driver "$pdrv" virtio-pci
ip addr add 10.0.2.15/24 dev "$nic"
ip link set "$nic" up
check ping-gateway wait_for 20 ping -c 1 -W 1 10.0.2.2
'''

# The features the driver negotiated, bit 34 is VIRTIO_F_RING_PACKED
PACKED = r'''
feat=$(cat /sys/class/net/$nic/device/features)
expect ring-packed "$(echo "$feat" | cut -c35)" 1
'''


def test_virtio_net_ping():
    return boot('basic-virtio-net', SCENARIO.replace('__MAC__', MAC),
                args=['-netdev', 'user,id=n0',
                      '-device', f'virtio-net-pci,netdev=n0,mac={MAC}'],
                timeout=300)


def test_virtio_net_ping_packed():
    return boot('basic-virtio-net-packed',
                SCENARIO.replace('__MAC__', MAC) + PACKED,
                args=['-netdev', 'user,id=n0',
                      '-device', f'virtio-net-pci,netdev=n0,mac={MAC},'
                                 'packed=on'],
                timeout=300)
