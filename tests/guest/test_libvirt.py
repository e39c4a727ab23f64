"""A composed SR-IOV device under Debian's libvirt (issue 10).

test_libvirt_sriov drives our QEMU through virsh with the domain of
docs/libvirt-example.xml: one virtio-net PF and three VFs as
<interface type='user'> devices with user aliases (ua-pf0, ua-vf1..3) at
functions 0-3 of slot 0 of a pcie-root-port, sriov-pf=ua-pf0 set on the
VFs through <qemu:override>, <features><acpi/></features>.  The test only
swaps in our QEMU (QEMU), the test bed's kernel, an initrd with the
scenario and two serial ports: ttyS0 a file (the console log in
build/test-logs/libvirt-sriov.log) and ttyS1 a unix socket of the host
(interactive.HOST_SH's ``host`` step).

virsh define and start the domain; virsh dumpxml shows the aliases.  The
guest checks the PF's SR-IOV values, enables the three VFs, checks each
(test_sriov's vf_check) and pings through the PF and each VF to the gateway
of the function's own slirp network (<ip address='10.0.N.0' prefix='24'/>
on each interface), then asks the host for ``save-restore`` and waits on
ttyS1.  The host checks query-pci (virsh qemu-monitor-command) for the
PF's and the VFs' sriov members, runs virsh save and virsh restore, checks
query-pci again on the restored QEMU, and only then answers on the restored
QEMU's ttyS1.  The guest checks that everything is as before the save and
pings through the PF and each VF again (neighbour caches flushed:
test_lifecycle's enabled_state), prints SCENARIO-DONE and waits; the host
runs virsh destroy and virsh undefine.

libvirt runs in a private mount namespace (unshare): /etc/libvirt,
/run/libvirt, /var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt are
bind mounts of a temporary directory there, so that the test's qemu.conf
(QEMU_CONF, the settings that libvirt needs without systemd) and
everything libvirt writes stay out of the machine's own directories and a
libvirtd of the machine, if any, is left alone.  The test starts virtlogd
and libvirtd (-d) there, talks to libvirtd through its socket and stops
both (and anything else left in the namespace) at the end.  Where libvirt
is missing it runs scripts/test-deps.sh (make check runs it, too), and it
creates the libvirt-qemu user and group if they are missing; where libvirt
cannot be installed or started, or the test does not run as root, it is
skipped with the reason.  It is skipped under make check-asan, too
(SANITIZER_LOGS set): see test_libvirt_sriov.  The
logs of libvirtd and of the domain's QEMU (with its command line) are
copied to build/test-logs/libvirt-sriov-*.log, the domain XML used to
libvirt-sriov.xml, and every virsh command with its output goes to
libvirt-sriov-host.log.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET

import guestlib
from guestlib import Skip, GUEST, make_initrd, parse
from interactive import HOST_SH
from test_sriov import compose, Scenario, VIRTIO_NET_VF_DEVICE
from test_lifecycle import LC_LIB, enabled_state
from testenv import (TOP, QEMU, LOGS, TIMEOUT_SCALE, SANITIZER_REPORT,
                     SANITIZER_LOGS)

EXAMPLE = os.path.join(TOP, 'docs', 'libvirt-example.xml')
QEMU_NS = 'http://libvirt.org/schemas/domain/qemu/1.0'
LAYOUT = [(0, [1, 2, 3])]
PF_ALIAS = 'ua-pf0'
NAME = 'libvirt-sriov'
DEPS = os.path.join(TOP, 'scripts', 'test-deps.sh')

# What libvirt's QEMU driver needs here (no systemd, no cgroup delegation,
# no SELinux/AppArmor): README.md, section "libvirt".  dynamic_ownership = 0
# keeps libvirt from chowning (and tagging with xattrs) the kernel, initrd
# and log files, which QEMU, running as root, can read anyway.
QEMU_CONF = '''\
security_driver = "none"
cgroup_controllers = [ ]
user = "root"
group = "root"
dynamic_ownership = 0
'''
LIBVIRTD_CONF = 'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n'
# The directories that libvirt reads or writes, private to its namespace
PRIVATE = {'etc': '/etc/libvirt', 'run': '/run/libvirt',
           'lib': '/var/lib/libvirt', 'cache': '/var/cache/libvirt',
           'log': '/var/log/libvirt'}


class HostFail(Exception):
    """A host step failed; the test fails with this message."""


class Libvirt:
    """virtlogd and libvirtd of our own in a private mount namespace."""

    def __init__(self, tmp, hostlog):
        self.tmp = tmp
        self.hostlog = hostlog
        self.dirs = {k: os.path.join(tmp, k) for k in PRIVATE}
        self.pidfiles = [os.path.join(tmp, 'libvirtd.pid'),
                         os.path.join(tmp, 'virtlogd.pid')]
        self.created = []           # mount points we had to create
        self.started = False
        self.ns = None              # libvirtd's mount namespace
        self.uri = ('qemu:///system?socket='
                    + os.path.join(self.dirs['run'], 'libvirt-sock'))

    def log(self, msg):
        self.hostlog.write(msg.rstrip('\n') + '\n')
        self.hostlog.flush()

    def ensure_installed(self):
        """libvirt's packages (scripts/test-deps.sh installs them where
        they are missing) and the libvirt-qemu user and group."""
        if os.geteuid() != 0:
            raise Skip('needs root (to install and start libvirtd)')
        for tool in ('unshare', 'mount'):
            if not shutil.which(tool):
                raise Skip(f'{tool} is not installed')
        if self.missing():
            self.run_host(['bash', DEPS], 'cannot install libvirt', 900)
            missing = self.missing()
            if missing:
                raise Skip(f'libvirt incomplete after {DEPS}: '
                           f'{", ".join(missing)} missing')
        # libvirt's QEMU driver looks them up when it starts, also with
        # user = "root" in qemu.conf (libvirt-daemon-system's postinst would
        # create them)
        if not self.getent('group', 'libvirt-qemu'):
            self.run_host(['groupadd', '--system', 'libvirt-qemu'],
                          'cannot create the group libvirt-qemu')
        if not self.getent('passwd', 'libvirt-qemu'):
            self.run_host(['useradd', '--system', '--gid', 'libvirt-qemu',
                           '--home-dir', '/var/lib/libvirt',
                           '--no-create-home', '--shell', '/usr/sbin/nologin',
                           '--comment', 'Libvirt Qemu', 'libvirt-qemu'],
                          'cannot create the user libvirt-qemu')

    def run_host(self, cmd, what, timeout=60):
        """Run CMD; Skip with WHAT and its last line of output if it
        fails."""
        try:
            p = subprocess.run(cmd, capture_output=True, text=True,
                               errors='replace', check=False,
                               timeout=timeout)
            rc, out = p.returncode, p.stdout + p.stderr
        except (OSError, subprocess.TimeoutExpired) as e:
            rc, out = None, str(e)
        self.log(f'$ {" ".join(cmd)}\nrc={rc}\n{out}')
        if rc != 0:
            last = (out.strip() or 'no output').splitlines()[-1]
            raise Skip(f'{what} ({cmd[-1] if cmd[0] == "bash" else cmd[0]} '
                       f'exited with {rc}: {last})')

    @staticmethod
    def getent(db, name):
        return subprocess.run(['getent', db, name], capture_output=True,
                              check=False).returncode == 0

    @staticmethod
    def missing():
        what = [t for t in ('libvirtd', 'virtlogd', 'virsh')
                if not shutil.which(t)]
        driver = subprocess.run(
            ['sh', '-c', 'ls /usr/lib/*/libvirt/connection-driver/'
                         'libvirt_driver_qemu.so'],
            capture_output=True, check=False)
        if driver.returncode != 0:
            what.append('libvirt_driver_qemu.so')
        return what

    def start(self):
        for d in self.dirs.values():
            os.makedirs(d)
        with open(os.path.join(self.dirs['etc'], 'qemu.conf'), 'w',
                  encoding='utf-8') as f:
            f.write(QEMU_CONF)
        with open(os.path.join(self.dirs['etc'], 'libvirtd.conf'), 'w',
                  encoding='utf-8') as f:
            f.write(LIBVIRTD_CONF)
        for mnt in PRIVATE.values():
            if not os.path.isdir(mnt):
                os.makedirs(mnt)
                self.created.append(mnt)
        binds = ''.join(f'mount --bind {self.dirs[k]} {mnt}\n'
                        for k, mnt in PRIVATE.items())
        script = (f'set -e\n{binds}'
                  f'virtlogd -d -p {self.pidfiles[1]}\n'
                  f'libvirtd -d -p {self.pidfiles[0]}\n')
        self.log(f'$ unshare --mount --propagation private sh -c '
                 f'{script!r}')
        self.started = True
        p = subprocess.run(['unshare', '--mount', '--propagation', 'private',
                            'sh', '-c', script], capture_output=True,
                           text=True, errors='replace', check=False,
                           timeout=60 * TIMEOUT_SCALE)
        self.log(f'rc={p.returncode}\n{p.stdout}{p.stderr}')
        if p.returncode != 0:
            raise Skip('cannot start libvirtd in a private mount namespace: '
                       + ((p.stderr.strip() or 'no output').splitlines()[-1]))
        end = time.monotonic() + 60 * TIMEOUT_SCALE
        while True:
            rc, _, err = self.virsh('list', '--all', fail=False)
            if rc == 0:
                break
            if time.monotonic() > end:
                raise Skip('libvirtd does not answer: ' + self.tail(err))
            time.sleep(0.5)
        self.ns = self.mnt_ns(self.read_pid(self.pidfiles[0]))

    @staticmethod
    def mnt_ns(pid):
        try:
            return os.readlink(f'/proc/{pid}/ns/mnt')
        except (OSError, TypeError):
            return None

    def tail(self, err):
        lines = (err.strip() or 'no output').splitlines()
        log = os.path.join(self.dirs['log'], 'libvirtd.log')
        if os.path.exists(log):
            with open(log, encoding='utf-8', errors='replace') as f:
                lines += f.read().splitlines()[-3:]
        return ' | '.join(lines[-4:])

    def virsh(self, *args, fail=True, timeout=120):
        cmd = ['virsh', '-q', '-c', self.uri, *args]
        t0 = time.monotonic()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True,
                               errors='replace', check=False,
                               timeout=timeout * TIMEOUT_SCALE)
            rc, out, err = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired:
            rc, out, err = None, '', f'timeout after {timeout} s'
        self.log(f'$ virsh {" ".join(args)}   '
                 f'[{time.monotonic() - t0:.1f} s, rc={rc}]\n{out}{err}')
        if fail and rc != 0:
            raise HostFail(f'virsh {" ".join(args)} failed (rc={rc}): '
                           f'{err.strip() or out.strip()}')
        return rc, out, err

    def stop(self):
        """Stop libvirtd and virtlogd (and a QEMU they left behind); remove
        the mount points we created.  The namespace ends with them."""
        if not self.started:
            return
        pids = [self.read_pid(f) for f in self.pidfiles]
        qemu_run = os.path.join(self.dirs['run'], 'qemu')
        if os.path.isdir(qemu_run):
            pids += [self.read_pid(os.path.join(qemu_run, f))
                     for f in os.listdir(qemu_run) if f.endswith('.pid')]
        # and whatever else runs in the namespace (e.g. a QEMU that libvirt
        # started to probe the emulator and that did not finish)
        if self.ns:
            pids += [int(p) for p in os.listdir('/proc') if p.isdigit()
                     and int(p) != os.getpid()
                     and self.mnt_ns(p) == self.ns]
        for pid in dict.fromkeys(filter(None, pids)):
            self.kill(pid)
        for mnt in reversed(self.created):
            try:
                os.rmdir(mnt)
            except OSError as e:
                self.log(f'cannot remove {mnt}: {e}')

    @staticmethod
    def read_pid(path):
        try:
            with open(path, encoding='utf-8') as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def kill(self, pid):
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            end = time.monotonic() + wait
            while time.monotonic() < end:
                if not os.path.exists(f'/proc/{pid}'):
                    return
                try:        # reap it if it is our child (it is not, -d)
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                time.sleep(0.1)
            self.log(f'pid {pid} did not exit on signal {sig}')


def pci_devices(ret):
    """All devices of a query-pci reply, behind bridges too."""
    out = []

    def walk(devs):
        for d in devs:
            out.append(d)
            walk((d.get('pci_bridge') or {}).get('devices', []))
    for bus in ret:
        walk(bus.get('devices', []))
    return out


def domain_xml(pf, initrd, console, ctl):
    """docs/libvirt-example.xml with our QEMU, kernel, the scenario's
    initrd and the test's serial ports; checks that its interfaces are
    the functions of PF (MAC, network, address, alias)."""
    with open(EXAMPLE, encoding='utf-8') as f:
        text = f.read().replace('@TOP@', TOP)
    ET.register_namespace('qemu', QEMU_NS)
    dom = ET.fromstring(text)
    want = [(f, f'ua-pf{pf.devfn}' if f is pf else f'ua-vf{f.devfn}')
            for f in pf.vfs + [pf]]
    ifaces = dom.findall('devices/interface')
    got = [(i.find('mac').get('address'), i.find('ip').get('address'),
            i.find('alias').get('name'), i.find('address').get('function'))
           for i in ifaces]
    assert got == [(f.mac, f'{f.net}.0', alias, f'0x{f.devfn}')
                   for f, alias in want], \
        f'{EXAMPLE}: interfaces {got} are not the composition {LAYOUT}'
    if 'kvm' in guestlib.accel_args():
        dom.set('type', 'kvm')
        ET.SubElement(dom, 'cpu', mode='host-passthrough')
    dom.find('os/kernel').text = os.path.join(GUEST, 'vmlinuz')
    dom.find('os/initrd').text = initrd
    devices = dom.find('devices')
    devices.find('emulator').text = os.path.abspath(QEMU)
    for tag in ('serial', 'console'):
        for e in devices.findall(tag):
            devices.remove(e)
    s0 = ET.SubElement(devices, 'serial', type='file')
    ET.SubElement(s0, 'source', path=console, append='on')
    ET.SubElement(s0, 'target', port='0')
    s1 = ET.SubElement(devices, 'serial', type='unix')
    ET.SubElement(s1, 'source', mode='bind', path=ctl)
    ET.SubElement(s1, 'target', port='1')
    return ET.tostring(dom, encoding='unicode')


class Run:
    """The host side of the test: checks and the console."""

    def __init__(self, lv, dom, console):
        self.lv = lv
        self.dom = dom
        self.console = console
        self.checks = []

    def check(self, name, ok, detail=''):
        self.checks.append((f'host:{name}', bool(ok), detail))
        self.lv.log(f'CHECK host:{name} {"PASS" if ok else "FAIL"} {detail}')
        return bool(ok)

    def expect(self, name, got, want):
        return self.check(name, got == want, repr(got) if got == want
                          else f'got {got!r} want {want!r}')

    def text(self):
        try:
            with open(self.console, 'rb') as f:
                return f.read().decode('utf-8', 'replace')
        except FileNotFoundError:
            return ''

    def wait_console(self, what, timeout):
        """Wait for the console line WHAT; HostFail on a panic, a QEMU
        gone or the timeout."""
        end = time.monotonic() + timeout * TIMEOUT_SCALE
        n = 0
        while True:
            text = self.text()
            if re.search(what, text, re.M):
                return
            if 'Kernel panic' in text:
                raise HostFail('kernel panic (see the console log)')
            n += 1
            if n % 10 == 0 and self.state() != 'running':
                raise HostFail(f'the domain is {self.state()!r} while '
                               f'waiting for {what!r} on the console')
            if time.monotonic() > end:
                raise HostFail(f'no {what!r} on the console within '
                               f'{timeout * TIMEOUT_SCALE:.0f} s')
            time.sleep(0.5)

    def state(self):
        rc, out, _ = self.lv.virsh('domstate', self.dom, fail=False)
        return out.strip() if rc == 0 else f'(domstate failed, rc={rc})'

    def qmp(self, cmd):
        _, out, _ = self.lv.virsh('qemu-monitor-command', '--pretty',
                                  self.dom, json.dumps({'execute': cmd}))
        return json.loads(out)['return']

    def check_aliases(self, tag, aliases, live):
        _, out, _ = self.lv.virsh('dumpxml', self.dom)
        dom = ET.fromstring(out)
        got = [(i.find('alias').get('name')
                if i.find('alias') is not None else None)
               for i in dom.findall('devices/interface')]
        # In the order of the XML: the VFs, then their PF
        self.expect(f'{tag}-interface-aliases', got,
                    aliases[1:] + aliases[:1])
        over = [d.get('alias') for d in
                dom.findall(f'{{{QEMU_NS}}}override/{{{QEMU_NS}}}device')]
        self.expect(f'{tag}-overrides', over, aliases[1:])
        if live:
            # libvirt's pcie-root-port, its bus 1, holds the functions
            ports = [c for c in dom.findall('devices/controller')
                     if c.get('model') == 'pcie-root-port']
            self.expect(f'{tag}-root-ports',
                        [(c.get('index'), c.find('model').get('name'))
                         for c in ports], [('1', 'pcie-root-port')])

    def check_query_pci(self, tag, pf, aliases, n):
        """query-pci: the PF's sriov member (total-vfs 3, N enabled) and
        each VF's (role vf, pf-device ua-pf0), found by the aliases as qdev ids."""
        if not guestlib.has('query-pci'):
            return
        info = {d.get('qdev_id'): d for d in pci_devices(self.qmp('query-pci'))}
        pfd = info.get(aliases[0]) or {}
        want = {'role': 'pf', 'total-vfs': pf.total, 'num-vfs': n,
                'vf-enable': n > 0, 'first-vf-offset': pf.offset,
                'vf-stride': pf.stride,
                'vf-device-id': int(VIRTIO_NET_VF_DEVICE, 16)}
        got = pfd.get('sriov') or {}
        self.expect(f'{tag}-query-pci-pf', {k: got.get(k) for k in want},
                    want)
        self.expect(f'{tag}-query-pci-pf-bus-slot-function',
                    (pfd.get('bus'), pfd.get('slot'), pfd.get('function')),
                    (1, 0, 0))
        for i, alias in enumerate(aliases[1:]):
            self.expect(f'{tag}-query-pci-{alias}',
                        (info.get(alias) or {}).get('sriov'),
                        {'role': 'vf', 'pf-device': PF_ALIAS,
                         'pf-qom-path': f'/machine/peripheral/{PF_ALIAS}',
                         'vf-number': i,
                         'state': 'enabled' if i < n else 'disabled'})


def scenario(pf):
    s = Scenario([pf])
    s.sh(LC_LIB)
    s.pf_check(pf)
    s.enable(pf, len(pf.vfs))
    s.sh('if host save-restore; then')
    enabled_state(s, pf, 'restored')
    s.sh('fi')
    # Stay up for virsh destroy
    s.sh('echo "SCENARIO-DONE rc=$FAILED"')
    s.sh('sleep 3600')
    return f'HOST_WAIT={int(180 * TIMEOUT_SCALE)}\n{HOST_SH}\n{s.text()}'


def copy_log(src, name):
    if os.path.exists(src):
        shutil.copyfile(src, os.path.join(LOGS, f'{NAME}-{name}.log'))


def test_libvirt_sriov():
    """Define, start, save, restore, destroy and undefine the domain of
    docs/libvirt-example.xml through virsh; the guest enables the VFs and
    pings through each, before the save and after the restore."""
    if SANITIZER_LOGS:
        # Seen with make check-asan: virsh define hung for good.  libvirt
        # probes the emulator with -daemonize, and this ASan runtime (GCC
        # 12) does not hold its allocator lock across fork(): when another
        # QEMU thread allocates at the fork, the daemonized child waits
        # forever for the lock.  A race in the sanitizer, not in QEMU.
        raise Skip('a sanitizer build under libvirt: libvirt starts QEMU '
                   'with -daemonize to probe it, and the ASan runtime can '
                   'deadlock in the forked child')
    _, (pf,) = compose(LAYOUT)
    aliases = [PF_ALIAS] + [f'ua-vf{vf.devfn}' for vf in pf.vfs]
    logs = os.path.abspath(LOGS)
    os.makedirs(logs, exist_ok=True)
    console = os.path.join(logs, f'{NAME}.log')
    if os.path.exists(console):
        os.unlink(console)
    tmp = tempfile.mkdtemp(prefix='lv-')
    hostlog = open(os.path.join(logs, f'{NAME}-host.log'), 'w',
                   encoding='utf-8')
    lv = Libvirt(tmp, hostlog)
    error = None
    run = None
    done = False
    try:
        lv.ensure_installed()
        lv.start()
        initrd = make_initrd(tmp, scenario(pf))
        ctl = os.path.join(tmp, 'ctl.sock')
        xml = domain_xml(pf, initrd, console, ctl)
        xml_path = os.path.join(logs, f'{NAME}.xml')
        with open(xml_path, 'w', encoding='utf-8') as f:
            f.write(xml)
        dom = ET.fromstring(xml).find('name').text
        run = Run(lv, dom, console)
        try:
            lv.virsh('define', xml_path)
            run.check_aliases('defined', aliases, live=False)
            lv.virsh('start', dom)
            run.expect('started-state', run.state(), 'running')
            run.check_aliases('running', aliases, live=True)
            run.wait_console(r'^@@host save-restore', 240)
            run.check_query_pci('before-save', pf, aliases, len(pf.vfs))
            save = os.path.join(tmp, 'dom.save')
            lv.virsh('save', dom, save)
            run.expect('saved-state', run.state(), 'shut off')
            lv.virsh('restore', save)
            run.expect('restored-state', run.state(), 'running')
            run.check_query_pci('after-restore', pf, aliases, len(pf.vfs))
            run.check_aliases('restored', aliases, live=True)
            # Tell the guest, through the restored QEMU's ttyS1
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(30)
                s.connect(ctl)
                s.sendall(b'restored\n')
                run.wait_console(r'^SCENARIO-DONE', 240)
            lv.virsh('destroy', dom)
            run.expect('destroyed-state', run.state(), 'shut off')
            lv.virsh('undefine', dom)
            _, out, _ = lv.virsh('list', '--all', '--name')
            run.expect('undefined', dom in out.split(), False)
            done = True
        except HostFail as e:
            error = str(e)
        finally:
            if not done:
                lv.virsh('destroy', dom, fail=False)
                lv.virsh('undefine', dom, fail=False)
    finally:
        try:
            lv.stop()
        finally:
            copy_log(os.path.join(lv.dirs['log'], 'libvirtd.log'),
                     'libvirtd')
            if run:
                copy_log(os.path.join(lv.dirs['log'], 'qemu',
                                      f'{run.dom}.log'), 'qemu')
            hostlog.close()
            shutil.rmtree(tmp, ignore_errors=True)
    res = parse(NAME, console, error)
    res.checks.extend(run.checks)
    qlog = os.path.join(logs, f'{NAME}-qemu.log')
    text = ''
    if os.path.exists(qlog):
        with open(qlog, encoding='utf-8', errors='replace') as f:
            text = f.read()
    m = SANITIZER_REPORT.search(text)
    res.checks.append(('host:qemu-log-no-sanitizer-report', not m,
                       text[m.start():m.start() + 2000] if m else ''))
    # Every check must have run: the console has the lines of both QEMUs
    names = {c[0] for c in res.checks}
    for want in ['pf0-ping'] + \
            [f'pf0-numvfs3-vf{i}-ping' for i in range(len(pf.vfs))] + \
            ['restored-pf-ping'] + \
            [f'restored-vf{i}-ping' for i in range(len(pf.vfs))]:
        if want not in names:
            res.checks.append((want, False, 'not on the console'))
    return res
