"""DPDK in the guest on two VFs of a composed PF, over vfio and a vIOMMU.

The machine has a virtual IOMMU (intel-iommu with interrupt remapping and
caching mode, q35 with kernel-irqchip=split, 2 vCPUs, 2 GiB) and one
virtio-net PF with two VFs on a PCIe root port, all with
iommu_platform=on; the PF is on slirp, the two VFs on one hub, so that
what one VF sends the other receives.  The guest kernel runs with
intel_iommu=on iommu=pt.  In the guest:

- the PF stays on virtio-pci, its two VFs are enabled with sriov_numvfs
  (autoprobe off) and bound to vfio-pci through driver_override;
- each VF must be alone in its IOMMU group (not with the PF nor with the
  other VF), and the DMAR driver's "Adding to iommu group" lines are
  reported;
- dpdk-testpmd (io forwarding, --tx-first, --iova-mode=va) runs on the
  two VFs for FORWARD seconds and is stopped; its forward statistics must
  show packets received and sent on both ports, with no RX errors,
  misses (RX-dropped) or mbuf allocation failures.

Requester IDs: QEMU traces its VT-d model (vtd_* events, to
build/test-logs/dpdk-vtd.log).  Each VF's address space must switch to
translated DMA (the vfio domain) under the VF's own BDF while testpmd
runs, the PF's must not (it stays identity-mapped, iommu=pt); QEMU must
have cached translations under each VF's own source id (bus << 8 |
devfn) in one domain, and under no other source id; no DMA fault may be
recorded.  (Both VFs are in testpmd's one vfio container, so they share
its domain: a domain of their own is not expected.)  With
--iova-mode=va the rings and buffers are at process virtual addresses,
which only the VF's own context translates: packets flowing is itself
evidence that each VF's DMA uses its own requester ID.

The guest's modules (vfio, vfio_iommu_type1, vfio-pci-core, vfio-pci,
irqbypass, vfio_virqfd) come from the kernel package that
scripts/guest.sh unpacked (build/guest/kpkg), dpdk-testpmd with its
libraries and the PMDs it needs from this machine's DPDK packages
(dpdk-dev, librte-net-virtio23, librte-mempool-ring23;
scripts/test-deps.sh installs them); all of it goes into an extra cpio
archive for this test only.  Where something is missing the test is
skipped with the reason.
"""

import glob
import os
import re
import shutil
import subprocess
import tempfile

from guestlib import boot, Skip, GUEST, LOGS
import guestlib

_read = guestlib._read          # pylint: disable=protected-access
NAME = 'dpdk'
TESTPMD = '/usr/bin/dpdk-testpmd'
LIBDIR = '/usr/lib/x86_64-linux-gnu'
# The PMDs testpmd needs here; EAL loads every library in the PMD
# directory, so the guest's holds only these.
PMDS = ('librte_bus_pci', 'librte_bus_vdev', 'librte_net_virtio',
        'librte_mempool_ring')
MODULES = ('vfio', 'vfio_iommu_type1', 'vfio_pci_core', 'vfio_pci',
           'irqbypass')
FORWARD = 15                    # seconds of forwarding
PF_ADDR = '0000:01:00.0'
VFS = ('0000:01:00.1', '0000:01:00.2')
SIDS = {'0000:01:00.0': 0x100, '0000:01:00.1': 0x101, '0000:01:00.2': 0x102}
TRACE_EVENTS = ('vtd_switch_address_space', 'vtd_iotlb_page_update',
                'vtd_dmar_fault', 'vtd_replay_ce_valid')


# --- The extra initramfs ---------------------------------------------------

class Staging:
    """A directory tree that becomes a cpio archive; files keep the
    host's paths and symlinks (the PMD directory's libraries must be the
    same files whichever name loads them)."""

    def __init__(self, root):
        self.root = root

    def _dest(self, path):
        return os.path.join(self.root, path.lstrip('/'))

    def symlink(self, path, target):
        d = self._dest(path)
        os.makedirs(os.path.dirname(d), exist_ok=True)
        if not os.path.lexists(d):
            os.symlink(target, d)

    def add(self, path):
        """Add PATH as on the host: symlinks in its last component are kept
        (and their targets added), directories are taken as resolved."""
        path = os.path.join(os.path.realpath(os.path.dirname(path)),
                            os.path.basename(path))
        d = self._dest(path)
        if os.path.lexists(d):
            return
        if os.path.islink(path):
            target = os.readlink(path)
            self.symlink(path, target)
            self.add(os.path.join(os.path.dirname(path), target))
        else:
            os.makedirs(os.path.dirname(d), exist_ok=True)
            shutil.copy2(path, d)

    def cpio(self, out):
        names = subprocess.run(['find', '.'], cwd=self.root, check=True,
                               capture_output=True).stdout
        with open(out, 'wb') as f:
            subprocess.run(['cpio', '-o', '-H', 'newc', '--quiet'],
                           cwd=self.root, input=names, stdout=f, check=True)


def _ldd(path):
    """The libraries PATH needs, as ldd resolves them here, and the
    interpreters (the lines of ldd's output without "=>")."""
    out = subprocess.run(['ldd', path], capture_output=True, text=True,
                         check=True).stdout
    libs, interps = [], []
    for line in out.splitlines():
        m = re.match(r'\s*(\S+) => (/\S+)', line)
        if m:
            libs.append(m.group(2))
            continue
        m = re.match(r'\s*(/\S+) \(0x', line)
        if m:
            interps.append(m.group(1))
        elif 'not found' in line:
            raise Skip(f'{path}: {line.strip()}')
    return libs, interps


def _pmd_files():
    """The PMD directory and, for each of PMDS, its names there."""
    dirs = sorted(glob.glob(f'{LIBDIR}/dpdk/pmds-*'))
    if not dirs:
        raise Skip(f'no DPDK PMD directory {LIBDIR}/dpdk/pmds-* (package '
                   'librte-net-virtio23; scripts/test-deps.sh installs it)')
    pmddir = dirs[-1]
    files = []
    for pmd in PMDS:
        names = glob.glob(f'{pmddir}/{pmd}.so*')
        if not names:
            pkg = pmd.replace('librte_', 'librte-').replace('_', '-') + '23'
            raise Skip(f'the DPDK PMD {pmd} is not in {pmddir} (package '
                       f'{pkg}; scripts/test-deps.sh installs it)')
        files += names
    return pmddir, files


def _kernel_modules(kver):
    """Paths of MODULES and their dependencies in the unpacked kernel
    package, relative to its lib/modules/KVER."""
    kmod = os.path.join(GUEST, 'kpkg', 'lib', 'modules', kver)
    if not os.path.isdir(kmod):
        raise Skip(f'{kmod} does not exist (the kernel package that '
                   'scripts/guest.sh unpacks)')
    found, todo = {}, list(MODULES)
    while todo:
        name = todo.pop().replace('-', '_')
        if name in found:
            continue
        hits = [p for p in glob.glob(f'{kmod}/kernel/**/*.ko*',
                                     recursive=True)
                if os.path.basename(p).split('.ko')[0].replace('-', '_')
                == name]
        if not hits:
            raise Skip(f'kernel module {name} is not in {kmod} (the guest '
                       'kernel needs CONFIG_VFIO_PCI=m)')
        found[name] = os.path.relpath(hits[0], kmod)
        deps = subprocess.run(['/sbin/modinfo', '-F', 'depends', hits[0]],
                              capture_output=True, text=True,
                              check=True).stdout.strip()
        todo += [d for d in deps.split(',') if d]
    return kmod, found


def build_cpio(out):
    """Write the extra initramfs archive OUT: the vfio modules (with the
    test bed's modules, depmod run over all), dpdk-testpmd, its libraries
    and the PMDs in PMDS."""
    guestlib.accel_args()               # Skip where ACCEL=kvm cannot work
    for tool in ('ldd', 'cpio'):
        if not shutil.which(tool):
            raise Skip(f'no {tool} here')
    if not os.path.exists('/sbin/depmod'):
        raise Skip('no /sbin/depmod here (package kmod)')
    if not os.access(TESTPMD, os.X_OK):
        raise Skip(f'{TESTPMD} is not installed (package dpdk-dev; '
                   'scripts/test-deps.sh installs it)')
    _, pmds = _pmd_files()
    try:
        with open(os.path.join(GUEST, 'kernel-version'),
                  encoding='utf-8') as f:
            kver = f.read().strip()
    except OSError as e:    # a failure, as for every guest test
        raise AssertionError(f'no guest test bed (scripts/guest.sh): '
                             f'{e}') from e
    kmod, modules = _kernel_modules(kver)
    base = os.path.join(GUEST, 'root', 'lib', 'modules', kver)
    if not os.path.isdir(base):
        raise Skip(f'{base} does not exist (scripts/guest.sh makes it)')

    with tempfile.TemporaryDirectory(prefix='dpdk-initrd-') as root:
        st = Staging(root)
        mods = os.path.join(root, 'lib', 'modules', kver)
        shutil.copytree(base, mods, symlinks=True)
        for rel in modules.values():
            os.makedirs(os.path.join(mods, os.path.dirname(rel)),
                        exist_ok=True)
            shutil.copy2(os.path.join(kmod, rel), os.path.join(mods, rel))
        subprocess.run(['/sbin/depmod', '-b', root, kver], check=True)

        libs, interps = set(), set()
        for path in [TESTPMD] + pmds:
            found, interp = _ldd(path)
            libs.update(found)
            interps.update(interp)
        # glibc loads libgcc_s at run time (pthread_cancel, at exit)
        libs.update(glob.glob(f'{LIBDIR}/libgcc_s.so.1'))
        for path in sorted(libs) + pmds + [TESTPMD]:
            st.add(path)
        # Absolute symlinks into /lib/<multiarch> (usrmerge: /lib is a
        # symlink here, a directory in the test bed), and the interpreter
        # by the name that the binaries ask for (/lib64 likewise).
        st.symlink(LIBDIR.replace('/usr', '', 1), LIBDIR)
        for interp in sorted(interps):
            st.add(os.path.realpath(interp))
            st.symlink(interp, os.path.realpath(interp))
        st.cpio(out)


# --- The guest's scenario ------------------------------------------------

def scenario():
    vf1, vf2 = VFS
    return f'''
PF={PF_ADDR}
VFS="{vf1} {vf2}"
D=/sys/bus/pci/devices
drv() {{ basename "$(readlink $D/$1/driver 2>/dev/null)"; }}
grp() {{ basename "$(readlink $D/$1/iommu_group 2>/dev/null)"; }}
export LD_LIBRARY_PATH={LIBDIR}
result cmdline $(cat /proc/cmdline)
result iommus $(ls /sys/class/iommu)
check dmar-present test -d /sys/class/iommu/dmar0
for m in {' '.join(MODULES)}; do
    check modprobe-$m modprobe $m
done
expect pf-driver "$(drv $PF)" virtio-pci
echo 0 > $D/$PF/sriov_drivers_autoprobe
echo 2 > $D/$PF/sriov_numvfs
check vfs-enabled wait_for 20 test -e $D/{vf2}
for vf in $VFS; do
    echo vfio-pci > $D/$vf/driver_override
    echo $vf > /sys/bus/pci/drivers_probe
    expect vfio-bound-$vf "$(drv $vf)" vfio-pci
done
expect pf-driver-after "$(drv $PF)" virtio-pci
pfg=$(grp $PF)
result iommu-group $PF $pfg $(ls /sys/kernel/iommu_groups/$pfg/devices) \
    type=$(cat /sys/kernel/iommu_groups/$pfg/type 2>/dev/null)
seen=$pfg
for vf in $VFS; do
    g=$(grp $vf)
    members=$(ls /sys/kernel/iommu_groups/$g/devices | tr '\\n' ' ')
    result iommu-group $vf $g $members \
        type=$(cat /sys/kernel/iommu_groups/$g/type 2>/dev/null)
    expect iommu-group-alone-$vf "$members" "$vf "
    case " $seen " in
        *" $g "*) fail iommu-group-own-$vf "group $g also used by another" ;;
        *) pass iommu-group-own-$vf "group $g" ;;
    esac
    seen="$seen $g"
    check vfio-dev-$vf test -c /dev/vfio/$g
done
dmesg | grep -E 'DMAR|iommu group|IOMMU' | sed 's/^/DMESG| /'
mkdir -p /dev/hugepages /var/run/dpdk
mount -t hugetlbfs nodev /dev/hugepages
echo 128 > /proc/sys/vm/nr_hugepages
expect hugepages "$(awk '/HugePages_Total/ {{ print $2 }}' /proc/meminfo)" 128
(sleep {FORWARD}; echo) | timeout -s KILL {FORWARD + 120} \\
    {TESTPMD} -l 0-1 -n 1 -a {vf1} -a {vf2} --iova-mode=va -- \\
    --forward-mode=io --auto-start --tx-first --nb-cores=1 \\
    --total-num-mbufs=4096 > /tmp/testpmd.log 2>&1
rc=$?
sed 's/^/PMD| /' /tmp/testpmd.log
expect testpmd-exit $rc 0
expect pf-driver-end "$(drv $PF)" virtio-pci
for vf in $VFS; do expect vfio-bound-end-$vf "$(drv $vf)" vfio-pci; done
'''


# --- Host-side checks ----------------------------------------------------

def _port_stats(log):
    """Port -> {field: int} from testpmd's forward statistics."""
    stats, port = {}, None
    for line in log.splitlines():
        if not line.startswith('PMD| '):
            continue
        line = line[5:]
        m = re.search(r'Forward statistics for port (\d+)', line)
        if m:
            port = int(m.group(1))
            stats[port] = {}
            continue
        if port is None:
            continue
        if 'Accumulated' in line or line.strip().startswith('-----'):
            port = None
            continue
        for k, v in re.findall(r'([A-Za-z-]+):\s*(\d+)', line):
            stats[port][k] = int(v)
    return stats


def testpmd_checks(text):
    checks = []
    stats = _port_stats(text)
    for port in (0, 1):
        s = stats.get(port)
        if s is None:
            checks.append((f'testpmd-port{port}-stats', False,
                           'no forward statistics for the port'))
            continue
        detail = ' '.join(f'{k}={v}' for k, v in s.items())
        ok = (s.get('RX-packets', 0) > 0 and s.get('TX-packets', 0) > 0 and
              s.get('RX-dropped', 1) == 0 and s.get('RX-error', 0) == 0 and
              s.get('RX-nombufs', 0) == 0)
        checks.append((f'testpmd-port{port}-stats', ok, detail))
    return checks


def vtd_checks(trace):
    """Checks on QEMU's VT-d trace: each VF's DMA under its own source
    id and domain; the PF's not translated; no fault."""
    checks = []
    switched = {}           # BDF -> list of 'iommu enabled' values
    for bus, slot, fn, on in re.findall(
            r'Device ([0-9a-f]{2}):([0-9a-f]{2})\.([0-9a-f]) switching '
            r'address space \(iommu enabled=(\d)\)', trace):
        switched.setdefault(f'0000:{bus}:{slot}.{fn}', []).append(on == '1')
    domains = {}            # sid -> set of domains
    for sid, dom in re.findall(
            r'IOTLB page update sid 0x([0-9a-f]+) iova 0x[0-9a-f]+ slpte '
            r'0x[0-9a-f]+ domain 0x([0-9a-f]+)', trace):
        domains.setdefault(int(sid, 16), set()).add(int(dom, 16))
    for vf in VFS:
        # translated while vfio owns it, back to identity after testpmd
        on = switched.get(vf, [])
        checks.append((f'vtd-translated-{vf}', any(on), f'switches {on}'))
        doms = domains.get(SIDS[vf], set())
        checks.append((f'vtd-dma-sid-{vf}', len(doms) == 1,
                       f'sid 0x{SIDS[vf]:04x} domains '
                       f'{sorted(hex(d) for d in doms)}'))
    on = switched.get(PF_ADDR, [])
    checks.append(('vtd-pf-not-translated', not any(on), f'switches {on}'))
    others = sorted(hex(s) for s in domains
                    if s not in (SIDS[vf] for vf in VFS))
    checks.append(('vtd-only-vf-sids', not others,
                   f'other source ids with translations: {others}'))
    faults = re.findall(r'^.*vtd_dmar_fault.*$|^.*sid 0x[0-9a-f]+ fault '
                        r'\d+.*$', trace, re.M)
    checks.append(('vtd-no-dma-fault', not faults, '; '.join(faults[:3])))
    return checks


def test_dpdk_vfio_vfs():
    """dpdk-testpmd on two VFs bound to vfio-pci under a virtual IOMMU:
    each VF in its own IOMMU group and domain, packets both ways."""
    trace = os.path.join(LOGS, f'{NAME}-vtd.log')
    with tempfile.TemporaryDirectory(prefix='dpdk-') as tmp:
        extra = os.path.join(tmp, 'dpdk.cpio')
        build_cpio(extra)
        os.makedirs(LOGS, exist_ok=True)
        if os.path.exists(trace):
            os.unlink(trace)
        args = ['-machine', 'kernel-irqchip=split', '-cpu', 'max',
                '-device', 'intel-iommu,intremap=on,caching-mode=on',
                '-device', 'pcie-root-port,id=rp,chassis=1',
                '-netdev', 'user,id=n0,restrict=on',
                '-netdev', 'hubport,id=h1,hubid=1',
                '-netdev', 'hubport,id=h2,hubid=1',
                '-device', 'virtio-net-pci,bus=rp,addr=0x0.0x1,netdev=h1,'
                           'mac=52:54:00:50:01:01,sriov-pf=pf0,'
                           'iommu_platform=on',
                '-device', 'virtio-net-pci,bus=rp,addr=0x0.0x2,netdev=h2,'
                           'mac=52:54:00:50:01:02,sriov-pf=pf0,'
                           'iommu_platform=on',
                '-device', 'virtio-net-pci,bus=rp,addr=0x0.0x0,netdev=n0,'
                           'mac=52:54:00:50:00:00,id=pf0,iommu_platform=on',
                '-D', trace]
        for ev in TRACE_EVENTS:
            args += ['-trace', ev]
        res = boot(NAME, scenario(), args=args, timeout=300, smp=2,
                   memory=2048, append='intel_iommu=on iommu=pt',
                   initrd_extra=[extra])
    res.checks.extend(testpmd_checks(_read(res.log)))
    res.checks.extend(vtd_checks(_read(trace)))
    return res
