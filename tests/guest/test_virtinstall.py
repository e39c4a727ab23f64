"""virt-install with its own defaults, on the installed QEMU (issue 16).

test_virtinstall_uefi has Debian's virt-install (virtinst) create and start
a domain on the QEMU that make install installed
(test_install.installed()), through a libvirtd of our own in a private
mount namespace (test_libvirt.Libvirt; the installed bin/ is first on its
PATH, so that libvirt finds the emulator and probes its capabilities), with
what virt-install chooses by itself: UEFI from Debian's OVMF (--boot
uefi: libvirt picks the firmware from the descriptors in
/usr/share/qemu/firmware), the video device, a USB tablet, the USB
controller, and with SPICE, its default graphics, sound, two USB
redirection devices and the SPICE agent channel.  We ask only for what the
test needs: the machine q35, TCG (--virt-type qemu; kvm with ACCEL=kvm
where KVM works), SPICE (the default) and VNC (for the screenshot) on
127.0.0.1, no disk and no NIC of libvirt's, the test bed's kernel and initrd
(direct kernel boot through OVMF), two serial ports (ttyS0 a file, the
console log build/test-logs/BASE/virtinstall-uefi.log; ttyS1 the host's
control socket, interactive.HOST_SH), the emulator (--xml
./devices/emulator=...) and the composed SR-IOV device: one virtio-net PF
and three VFs, each on its own slirp network, on a pcie-root-port of its
own, through --qemu-commandline.

The host checks the domain XML (emulator, EFI firmware from OVMF, tablet,
sound, video, USB controller and redirection, SPICE and VNC) and that QEMU runs OVMF; the guest checks the PF,
enables the three VFs and pings through the PF and each VF to its own
network.  libvirt numbers the buses of its own root ports first, so the
guest finds the bus of the composed device by the PF's MAC address
(SRIOV_BUS).  Then the guest writes a token, the PF's sriov_numvfs and
the VFs to its screen (/dev/tty0, the EFI framebuffer console), and the
host takes a VNC screenshot of the domain with vncsnapshot and reads it
with tesseract (test_screen): blank before, the token and "three VFs
enabled" after.  virsh destroy and undefine --nvram end it.  The screenshots and
OCR text are build/test-logs/BASE/virtinstall-uefi-{blank,text}.{jpg,txt};
virt-install's and virsh's commands with their output are in
virtinstall-uefi-host.log, libvirtd's and QEMU's logs next to it.

Skipped without root, libvirt, virt-install, OVMF, vncsnapshot or
tesseract (scripts/test-deps.sh installs them), and under make check-asan.
"""

import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET

import guestlib
from guestlib import Skip, GUEST, make_initrd, parse
from interactive import HOST_SH
from test_install import installed
from test_libvirt import Libvirt, HostFail, Run, copy_log
from test_screen import (LAYOUT, SHOWN, need_tools, screen_steps, token,
                         snapshot, check_screens)
from test_sriov import compose, GUEST_BUS
from testenv import LOGS, TIMEOUT_SCALE, SANITIZER_LOGS

NAME = 'virtinstall-uefi'
DOM = 'qemu-sriov-virtinstall'
OSINFO = 'linux2022'
KERNEL_ARGS = 'console=ttyS0 panic=-1 quiet loglevel=4 pci=realloc'
# The PF's MAC tells the guest the bus of the composed device
FIND_BUS = r'''
SRIOV_BUS=
for d in /sys/class/net/*; do
    if [ "$(cat $d/address)" = "__PFMAC__" ]; then
        # device is the virtio device, its parent the PCI function
        SRIOV_BUS=$(basename "$(readlink -f $d/device/..)" | cut -d: -f1-2)
    fi
done
result sriov-bus "$SRIOV_BUS"
check sriov-bus-found [ -n "$SRIOV_BUS" ]
'''


def scenario(pf, tok):
    s = screen_steps(pf, tok)
    s.sh('echo "SCENARIO-DONE rc=$FAILED"')
    s.sh('sleep 3600')          # until virsh destroy
    text = s.text().replace(f'{GUEST_BUS}:', '${SRIOV_BUS}:')
    find = FIND_BUS.replace('__PFMAC__', pf.mac)
    return f'HOST_WAIT={int(300 * TIMEOUT_SCALE)}\n{HOST_SH}\n{find}\n{text}'


def qemu_commandline(args):
    """compose()'s args for libvirt's command line: QEMU sees them before
    libvirt's own -device options, so the root port gets a slot of pcie.0
    and a chassis number that libvirt does not use."""
    return ' '.join(shlex.quote(a.replace(
        'chassis=1', 'chassis=200,bus=pcie.0,addr=0x1c.0')) for a in args)


class VirtRun(Run):
    """test_libvirt's host side plus the screenshots."""

    def vnc_port(self):
        ret = self.qmp('query-vnc')
        return int(ret.get('service') or 0), ret

    def serve(self, ctl, shots, words, timeout):
        """Answer the guest's host steps on CTL until SCENARIO-DONE."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(ctl)
            seen = 0
            end = time.monotonic() + timeout * TIMEOUT_SCALE
            while True:
                text = self.text()
                markers = re.findall(r'^@@host (\S+) ?(.*?)\r?$', text, re.M)
                for action, arg in markers[seen:]:
                    seen += 1
                    self.lv.log(f'guest asks: {action} {arg}')
                    if action != 'screenshot' or arg not in shots:
                        s.sendall(f'error unknown {action} {arg}\n'.encode())
                        continue
                    port, vnc = self.vnc_port()
                    self.check(f'vnc-{arg}-enabled',
                               vnc.get('enabled') and port, f'{vnc}')
                    ok, detail = snapshot(self.lv.log, port, shots[arg],
                                          blank=arg == 'blank')
                    self.check(f'vncsnapshot-{arg}', ok, detail)
                    if arg == 'text' and ok:
                        check_screens(self.check, self.lv.log,
                                      shots['blank'], shots['text'], words)
                    s.sendall(b'ok\n')
                if re.search(r'^SCENARIO-DONE', text, re.M):
                    return
                if 'Kernel panic' in text:
                    raise HostFail('kernel panic (see the console log)')
                if time.monotonic() > end:
                    raise HostFail(f'no SCENARIO-DONE within '
                                   f'{timeout * TIMEOUT_SCALE:.0f} s')
                time.sleep(0.5)

    def check_defaults(self, qemu):
        """What virt-install chose, in the domain XML."""
        _, out, _ = self.lv.virsh('dumpxml', self.dom)
        dom = ET.fromstring(out)
        dev = dom.find('devices')
        self.expect('emulator', dev.findtext('emulator'), qemu)
        loader = dom.findtext('os/loader') or ''
        self.check('uefi-ovmf', '/OVMF' in loader and
                   (dom.find('os/loader').get('type') == 'pflash'),
                   loader)
        self.check('nvram', bool(dom.findtext('os/nvram')),
                   dom.findtext('os/nvram') or 'none')
        inputs = [(i.get('type'), i.get('bus'))
                  for i in dev.findall('input')]
        self.check('usb-tablet', ('tablet', 'usb') in inputs, f'{inputs}')
        sounds = [s.get('model') for s in dev.findall('sound')]
        self.check('sound', bool(sounds), f'{sounds}')
        videos = [v.find('model').get('type') for v in dev.findall('video')]
        self.check('video', bool(videos), f'{videos}')
        usb = [c.get('model') for c in dev.findall('controller')
               if c.get('type') == 'usb']
        self.check('usb-controller', bool(usb), f'{usb}')
        gfx = [(g.get('type'), g.get('listen')) for g in
               dev.findall('graphics')]
        self.check('graphics-vnc', ('vnc', '127.0.0.1') in gfx, f'{gfx}')
        self.check('graphics-spice', ('spice', '127.0.0.1') in gfx,
                   f'{gfx}')
        redir = [(r.get('bus'), r.get('type')) for r in
                 dev.findall('redirdev')]
        self.check('usb-redir', ('usb', 'spicevmc') in redir, f'{redir}')
        self.check('machine-q35', 'q35' in
                   (dom.find('os/type').get('machine') or ''),
                   dom.find('os/type').get('machine'))
        return dom


def test_virtinstall_uefi():
    if SANITIZER_LOGS:
        raise Skip('a sanitizer build under libvirt (see test_libvirt)')
    destdir, prefix, qemu = installed()
    need_tools()
    if not shutil.which('virt-install'):
        raise Skip('virt-install is not installed (Debian package virtinst; '
                   'scripts/test-deps.sh installs it)')
    if not os.path.isdir('/usr/share/qemu/firmware') or \
            not any('edk2' in f for f in os.listdir('/usr/share/qemu/firmware')):
        raise Skip('no OVMF firmware descriptor in /usr/share/qemu/firmware '
                   '(Debian package ovmf)')
    accel = guestlib.accel_args()
    virt_type = 'kvm' if 'kvm' in accel else 'qemu'
    tok = token()
    args, (pf,) = compose(LAYOUT)
    logs = os.path.abspath(LOGS)
    os.makedirs(logs, exist_ok=True)
    console = os.path.join(logs, f'{NAME}.log')
    if os.path.exists(console):
        os.unlink(console)
    shots = {k: os.path.join(logs, f'{NAME}-{k}.jpg')
             for k in ('blank', 'text')}
    tmp = tempfile.mkdtemp(prefix='vi-')
    hostlog = open(os.path.join(logs, f'{NAME}-host.log'), 'w',
                   encoding='utf-8')
    lv = Libvirt(tmp, hostlog)
    run = None
    error = None
    try:
        lv.ensure_installed()
        # libvirtd finds the installed QEMU on its PATH
        path = os.environ.get('PATH', '')
        os.environ['PATH'] = f'{os.path.dirname(qemu)}:{path}'
        try:
            lv.start()
        finally:
            os.environ['PATH'] = path
        initrd = make_initrd(tmp, scenario(pf, tok))
        ctl = os.path.join(tmp, 'ctl.sock')
        run = VirtRun(lv, DOM, console)
        cmd = ['virt-install', '--connect', lv.uri, '--name', DOM,
               '--osinfo', OSINFO, '--virt-type', virt_type,
               '--arch', 'x86_64', '--machine', 'q35',
               '--memory', '2048', '--vcpus', '1',
               '--boot', f'uefi,kernel={os.path.join(GUEST, "vmlinuz")},'
                         f'initrd={initrd},kernel_args="{KERNEL_ARGS}"',
               '--install', 'no_install=yes', '--disk', 'none',
               '--network', 'none',
               # SPICE is virt-install's default (and brings sound, USB
               # redirection and the SPICE agent channel); VNC for the
               # screenshots
               '--graphics', 'spice,listen=127.0.0.1',
               '--graphics', 'vnc,listen=127.0.0.1',
               '--serial', f'file,path={console}',
               '--serial', f'unix,mode=bind,path={ctl}',
               '--xml', f'./devices/emulator={qemu}',
               # one argument: its value starts with a dash
               f'--qemu-commandline={qemu_commandline(args)}',
               '--noautoconsole']
        for attempt in (1, 2):
            t0 = time.monotonic()
            try:
                p = subprocess.run(cmd, capture_output=True, text=True,
                                   errors='replace', check=False,
                                   timeout=300 * TIMEOUT_SCALE)
                rc, out = p.returncode, p.stdout + p.stderr
            except subprocess.TimeoutExpired:
                rc, out = None, 'timeout'
            lv.log(f'$ {shlex.join(cmd)}   [{time.monotonic() - t0:.1f} s, '
                   f'rc={rc}]\n{out}')
            # libvirt picks a free port for SPICE and VNC, and another
            # QEMU on this machine may take it before ours binds it: once
            # more then
            if rc == 0 or attempt == 2 or not re.search(
                    r'binding socket to .* failed|Address already in use',
                    out):
                break
            lv.virsh('undefine', '--nvram', DOM, fail=False)
        try:
            if rc != 0:
                raise HostFail(f'virt-install failed (rc={rc}): '
                               f'{out.strip()[-1500:]}')
            run.expect('started-state', run.state(), 'running')
            run.check_defaults(qemu)
            run.serve(ctl, shots, SHOWN(tok), 900)
        except HostFail as e:
            error = str(e)
        finally:
            lv.virsh('destroy', DOM, fail=False)
            lv.virsh('undefine', '--nvram', DOM, fail=False)
    finally:
        try:
            lv.stop()
        finally:
            copy_log(os.path.join(lv.dirs['log'], 'libvirtd.log'),
                     'libvirtd')
            qlog = os.path.join(lv.dirs['log'], 'qemu', f'{DOM}.log')
            if os.path.exists(qlog):
                shutil.copyfile(qlog, os.path.join(logs, f'{NAME}-qemu.log'))
            hostlog.close()
            shutil.rmtree(tmp, ignore_errors=True)
    res = parse(NAME, console, error)
    res.checks.extend(run.checks if run else [])
    qtext = ''
    qlog = os.path.join(logs, f'{NAME}-qemu.log')
    if os.path.exists(qlog):
        with open(qlog, encoding='utf-8', errors='replace') as f:
            qtext = f.read()
    # The QEMU that libvirt ran is ours, with OVMF and the composed device
    res.checks.append(('host:qemu-is-installed-one', qemu in qtext,
                       qlog))
    res.checks.append(('host:qemu-runs-ovmf', 'OVMF' in qtext, qlog))
    res.checks.append(('host:qemu-has-sriov-pf', f'sriov-pf={pf.id}' in qtext,
                       qlog))
    names = {c[0] for c in res.checks}
    for want in ['pf0-ping', 'host:vncsnapshot-text',
                 f'host:ocr-text-shows-{tok.replace(" ", "-")}'] + \
            [f'pf0-numvfs3-vf{i}-ping' for i in range(len(pf.vfs))]:
        if want not in names:
            res.checks.append((want, False, 'did not run'))
    return res
