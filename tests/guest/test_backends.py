"""The VFs of one composed PF on different network backends.

One virtio-net PF (slirp) with a VF on each backend: slirp (`user`),
`tap`, `stream` (TCP), `socket` (the older netdev, TCP), `dgram` (unix
datagram sockets) and `vhost-user`.  The guest enables the VFs, checks
each (vf_check: virtio_net, its MAC) and pings through each VF a peer
that only its own backend reaches, then
disables the VFs, enables them again (the backends must carry on after
the VFs were reset) and pings once more.  As in test_sriov.py each
function has its own subnet NET.0/24 (NET = 10.0.<devfn + 10>): the VF
takes NET.15 and pings NET.2, which is

- user: slirp's gateway of the VF's own netdev;
- tap: the address of the tap device in a network namespace of the
  test's own (QEMU opens the tap in the host's namespace, the test moves
  it into its namespace once the guest is up);
- stream, socket, dgram: a peer in this process (Responder) on the
  other end of the socket, which answers ARP requests for NET.2 and ICMP
  echo requests to it and counts them;
- vhost-user: dpdk-testpmd with the vhost PMD in icmpecho mode (it
  answers ARP requests and ICMP echo requests on its port).  vhost-user
  needs all guest RAM in shared memory: memory-backend-memfd with
  share=on as the machine's memory backend.

Besides the guest's pings, the host checks that each socket peer and
testpmd did answer (host-* checks).  test_backends_tap_vhost runs a VF on
tap with vhost=on, where /dev/vhost-net exists, and is skipped elsewhere.

Everything the tests create (namespace, tap, sockets, testpmd and its
DPDK runtime directory) goes away at the end, also on failure.  Needs
root, /dev/net/tun and, for vhost-user, dpdk-testpmd with the vhost PMD
(scripts/test-deps.sh installs them); without them the tests are skipped
with the reason.
"""

import contextlib
import glob
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time

import guestlib
from guestlib import boot, Skip, LOGS, TIMEOUT_SCALE
from test_sriov import BUS, PF, Scenario

TESTPMD = 'dpdk-testpmd'
MEMORY = 512


def _ip(*args, check=True):
    return subprocess.run(['ip', *args], capture_output=True, text=True,
                          check=check)


def _ip_quiet(*args):
    """ip ARGS, ignoring failure (clean-up of what may be gone already)."""
    subprocess.run(['ip', *args], capture_output=True, check=False)


def _rmdir_quiet(path):
    with contextlib.suppress(OSError):
        os.rmdir(path)


# --- A peer for the socket backends --------------------------------------

def _csum(data):
    if len(data) % 2:
        data += b'\0'
    s = sum(struct.unpack(f'!{len(data) // 2}H', data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


class Responder:
    """Answers ARP requests for IP and ICMP echo requests to it, with MAC:
    what the guest's ping needs from the other end of a socket backend."""

    def __init__(self, ip, mac):
        self.ip = socket.inet_aton(ip)
        self.mac = bytes.fromhex(mac.replace(':', ''))
        self.arp = self.icmp = self.frames = 0

    def answer(self, frame):
        """The reply to the Ethernet FRAME, or None."""
        self.frames += 1
        if len(frame) < 42:
            return None
        etype = frame[12:14]
        if etype == b'\x08\x06':
            htype, ptype, hlen, plen, op = struct.unpack('!HHBBH',
                                                         frame[14:22])
            sha, spa, tpa = frame[22:28], frame[28:32], frame[38:42]
            if (htype, ptype, hlen, plen, op) != (1, 0x0800, 6, 4, 1) or \
                    tpa != self.ip:
                return None
            self.arp += 1
            return (sha + self.mac + b'\x08\x06' +
                    struct.pack('!HHBBH', 1, 0x0800, 6, 4, 2) +
                    self.mac + self.ip + sha + spa)
        if etype != b'\x08\x00':
            return None
        ihl = (frame[14] & 15) * 4
        total = struct.unpack('!H', frame[16:18])[0]
        ip = frame[14:14 + total]
        if len(ip) < ihl + 8 or ip[9] != 1 or ip[16:20] != self.ip or \
                ip[ihl] != 8:
            return None
        self.icmp += 1
        icmp = bytearray(ip[ihl:])
        icmp[0] = 0                         # echo reply
        icmp[2:4] = b'\0\0'
        icmp[2:4] = struct.pack('!H', _csum(bytes(icmp)))
        hdr = bytearray(ip[:ihl])
        hdr[12:16], hdr[16:20] = ip[16:20], ip[12:16]
        hdr[8] = 64
        hdr[10:12] = b'\0\0'
        hdr[10:12] = struct.pack('!H', _csum(bytes(hdr)))
        return frame[6:12] + self.mac + b'\x08\x00' + bytes(hdr) + \
            bytes(icmp)

    def counts(self):
        return f'{self.frames} frames, {self.arp} ARP, {self.icmp} ICMP echo'


class SocketPeer(threading.Thread):
    """A Responder on a socket, in a thread, until stop()."""

    def __init__(self, responder):
        super().__init__(daemon=True)
        self.responder = responder
        self.error = None
        self._stop_r, self._stop_w = os.pipe()

    def stop(self):
        os.write(self._stop_w, b'x')
        self.join(10)
        os.close(self._stop_r)
        os.close(self._stop_w)

    def _wait(self, sock):
        """Wait until SOCK is readable; False once stop() was called."""
        r, _, _ = select.select([sock, self._stop_r], [], [])
        return self._stop_r not in r

    def run(self):
        try:
            self.serve()
        except Exception as e:  # pylint: disable=broad-except
            self.error = repr(e)


class StreamPeer(SocketPeer):
    """The server end of -netdev stream (TCP on the loopback): frames are
    sent as a 32-bit big-endian length followed by the frame."""

    def __init__(self, responder):
        super().__init__(responder)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(('127.0.0.1', 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]

    def serve(self):
        with self.listener:
            if not self._wait(self.listener):
                return
            conn, _ = self.listener.accept()
        with conn:
            buf = b''
            while self._wait(conn):
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while len(buf) >= 4:
                    n = struct.unpack('!I', buf[:4])[0]
                    if len(buf) < 4 + n:
                        break
                    reply = self.responder.answer(buf[4:4 + n])
                    buf = buf[4 + n:]
                    if reply:
                        conn.sendall(struct.pack('!I', len(reply)) + reply)


class DgramPeer(SocketPeer):
    """The remote end of -netdev dgram on unix datagram sockets: a frame
    per datagram."""

    def __init__(self, responder, path, qemu_path):
        super().__init__(responder)
        self.path, self.qemu_path = path, qemu_path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)

    def serve(self):
        with self.sock:
            while self._wait(self.sock):
                reply = self.responder.answer(self.sock.recv(65536))
                if reply:
                    try:
                        self.sock.sendto(reply, self.qemu_path)
                    except OSError:
                        pass        # QEMU gone or not bound yet


# --- The backends ----------------------------------------------------------

class Backend:
    """The netdev of one VF and what it needs on the host.  setup() runs
    before QEMU starts, on_ready() once the guest is up, checks() after
    QEMU has exited; clean-ups go on the ExitStack."""

    kind = None

    def __init__(self, fn, ctx):
        self.fn, self.ctx = fn, ctx
        self.peer_ip = f'{fn.net}.2'

    def setup(self, stack):
        raise NotImplementedError

    def on_ready(self):
        pass

    def checks(self):
        return []


class User(Backend):
    kind = 'user'

    def setup(self, stack):
        return f'user,id={self.fn.netdev},net={self.fn.net}.0/24'


class Tap(Backend):
    """A tap that QEMU creates in the host's namespace; once the guest is
    up the test moves it into its own namespace (the tap keeps working
    for QEMU) and gives it the peer address there."""

    kind = 'tap'
    vhost = False

    def setup(self, stack):
        self.ifname = f'sbk{os.getpid()}t{self.fn.devfn}'[:15]
        stack.callback(_ip_quiet, 'link', 'del', self.ifname)
        vhost = ',vhost=on' if self.vhost else ''
        return (f'tap,id={self.fn.netdev},ifname={self.ifname},'
                f'script=no,downscript=no{vhost}')

    def on_ready(self):
        ns = self.ctx.netns()
        _ip('link', 'set', self.ifname, 'netns', ns)
        _ip('-n', ns, 'addr', 'add', f'{self.peer_ip}/24',
            'dev', self.ifname)
        _ip('-n', ns, 'link', 'set', self.ifname, 'up')


class TapVhost(Tap):
    kind = 'tap-vhost'
    vhost = True


class Stream(Backend):
    kind = 'stream'

    def setup(self, stack):
        self.responder = Responder(self.peer_ip,
                                   f'52:54:00:ee:00:{self.fn.devfn:02x}')
        self.peer = StreamPeer(self.responder)
        self.peer.start()
        stack.callback(self.peer.stop)
        return (f'stream,id={self.fn.netdev},server=off,addr.type=inet,'
                f'addr.host=127.0.0.1,addr.port={self.peer.port}')

    def checks(self):
        r = self.responder
        ok = r.arp > 0 and r.icmp > 0 and not self.peer.error
        return [(f'host-{self.kind}-peer', ok,
                 r.counts() + (f'; error {self.peer.error}'
                               if self.peer.error else ''))]


class Socket(Stream):
    """The older -netdev socket, connecting to the same kind of peer (its
    TCP framing is stream's)."""

    kind = 'socket'

    def setup(self, stack):
        super().setup(stack)
        return (f'socket,id={self.fn.netdev},'
                f'connect=127.0.0.1:{self.peer.port}')


class Dgram(Stream):
    kind = 'dgram'

    def setup(self, stack):
        self.responder = Responder(self.peer_ip,
                                   f'52:54:00:ee:00:{self.fn.devfn:02x}')
        peer = os.path.join(self.ctx.tmp, f'dgram{self.fn.devfn}-peer')
        local = os.path.join(self.ctx.tmp, f'dgram{self.fn.devfn}-qemu')
        self.peer = DgramPeer(self.responder, peer, local)
        self.peer.start()
        stack.callback(self.peer.stop)
        return (f'dgram,id={self.fn.netdev},local.type=unix,'
                f'local.path={local},remote.type=unix,remote.path={peer}')


class VhostUser(Backend):
    """dpdk-testpmd, vhost PMD as the vhost-user server, icmpecho mode.
    Its forwarding core busy-polls: it runs at nice 19, so that it takes
    little from the guest where the CPUs are busy (with two busy loops
    beside it on two cores, the test still passed, in 51 s)."""

    kind = 'vhost-user'

    def setup(self, stack):
        sock = os.path.join(self.ctx.tmp, f'vhost-user{self.fn.devfn}.sock')
        prefix = f'qemu-sriov-backends-{os.getpid()}'
        self.log = os.path.join(LOGS, f'{self.ctx.name}-testpmd.log')
        cpus = ','.join(map(str, sorted(os.sched_getaffinity(0))))
        cmd = [TESTPMD, '--no-huge', '-m', '128', '--no-pci',
               f'--file-prefix={prefix}', f'--lcores=(0-1)@({cpus})',
               '--vdev', f'net_vhost0,iface={sock},queues=1',
               '--', '--forward-mode=icmpecho', '--auto-start',
               '--disable-link-check',
               '--nb-cores=1', '--rxq=1', '--txq=1',
               '--total-num-mbufs=2048']
        # stdbuf: its stdout to a file is line by line, for the log and
        # the "Press enter to exit" that says it forwards.
        cmd = ['nice', '-n', '19', 'stdbuf', '-oL'] + cmd
        os.makedirs(LOGS, exist_ok=True)
        # pylint: disable=consider-using-with
        logf = open(self.log, 'w', encoding='utf-8')
        stack.callback(logf.close)
        # testpmd runs until its standard input is closed (or at EOF).
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                     stdout=logf, stderr=subprocess.STDOUT)
        # DPDK's runtime directory /var/run/dpdk/PREFIX, and its parent if
        # that is empty then (nothing else uses DPDK here)
        stack.callback(_rmdir_quiet, '/var/run/dpdk')
        stack.callback(shutil.rmtree, f'/var/run/dpdk/{prefix}', True)
        stack.callback(self.stop)
        end = time.monotonic() + 30 * TIMEOUT_SCALE
        while 'Press enter to exit' not in guestlib._read(self.log):
            if self.proc.poll() is not None or time.monotonic() > end:
                raise AssertionError(
                    f'{TESTPMD} did not start (status {self.proc.poll()}); '
                    f'its log {self.log}:\n' +
                    '\n'.join(guestlib._read(self.log).splitlines()[-15:]))
            time.sleep(0.2)
        return (f'vhost-user,id={self.fn.netdev},chardev=c{self.fn.netdev},'
                f'queues=1', '-chardev',
                f'socket,id=c{self.fn.netdev},path={sock}')

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()     # testpmd prints its stats and exits
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def checks(self):
        self.stop()
        text = guestlib._read(self.log)
        # The port's "Forward statistics", then the accumulated ones
        m = re.search(r'RX-packets: (\d+).*?\n\s*TX-packets: (\d+)', text)
        rx, tx = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
        return [(f'host-{self.kind}-testpmd', rx > 0 and tx > 0,
                 f'rx={rx} tx={tx} status={self.proc.returncode} '
                 f'(log {self.log})')]


class Context:
    """What the backends of one run share: a name, a scratch directory and
    (made on first use) a network namespace."""

    def __init__(self, name, stack):
        self.name, self.stack = name, stack
        self.tmp = tempfile.mkdtemp(prefix=f'qemu-sriov-{name}-')
        stack.callback(shutil.rmtree, self.tmp, True)
        self._netns = None

    def netns(self):
        if self._netns is None:
            ns = f'qemu-sriov-{self.name}-{os.getpid()}'
            _ip('netns', 'add', ns)
            self.stack.callback(_ip_quiet, 'netns', 'del', ns)
            _ip('-n', ns, 'link', 'set', 'lo', 'up')
            self._netns = ns
        return self._netns


def _requirements(backends):
    """Skip unless this machine can run BACKENDS."""
    guestlib.accel_args()               # Skip where ACCEL=kvm cannot work
    kinds = {b.kind for b in backends}
    if kinds & {'tap', 'tap-vhost'}:
        if os.geteuid() != 0:
            raise Skip('tap devices and network namespaces need root')
        if not os.path.exists('/dev/net/tun'):
            raise Skip('/dev/net/tun does not exist')
        if not shutil.which('ip'):
            raise Skip('no ip command (iproute2)')
    if 'tap-vhost' in kinds and not os.path.exists('/dev/vhost-net'):
        raise Skip('/dev/vhost-net does not exist (no vhost-net kernel '
                   'module here), so tap with vhost=on cannot run')
    if 'vhost-user' in kinds:
        if not shutil.which(TESTPMD):
            raise Skip(f'{TESTPMD} is not installed (package dpdk-dev; '
                       'scripts/test-deps.sh installs it)')
        if not glob.glob('/usr/lib/*/dpdk/pmds-*/librte_net_vhost.so*'):
            raise Skip('the DPDK vhost PMD is not installed (package '
                       'librte-net-vhost23; scripts/test-deps.sh installs '
                       'it)')


def run_backends(name, classes, timeout=240):
    """Boot one PF (slirp) at devfn 0 with a VF at devfn i for the i-th of
    CLASSES (Backend subclasses); enable, check, ping, disable, twice."""
    pf = PF(0, 0, list(range(1, len(classes) + 1)))
    with contextlib.ExitStack() as stack:
        ctx = Context(name, stack)
        backends = [cls(vf, ctx) for cls, vf in zip(classes, pf.vfs)]
        _requirements(backends)
        args = ['-device', f'pcie-root-port,id={BUS},chassis=1']
        # The VFs before their PF, which upstream's composition needs
        for fn, b in list(zip(pf.vfs, backends)) + [(pf, User(pf, ctx))]:
            netdev = b.setup(stack)
            if isinstance(netdev, tuple):   # (netdev, more QEMU args...)
                args += list(netdev[1:])
                netdev = netdev[0]
            extra = f',id={pf.id}' if fn is pf else f',sriov-pf={pf.id}'
            args += ['-netdev', netdev,
                     '-device', f'virtio-net-pci,bus={BUS},'
                                f'addr={fn.qemu_addr},netdev={fn.netdev},'
                                f'mac={fn.mac}{extra}']
        if any(b.kind == 'vhost-user' for b in backends):
            args += ['-object', f'memory-backend-memfd,id=mem,'
                                f'size={MEMORY}M,share=on',
                     '-machine', 'memory-backend=mem']
        s = Scenario([pf])
        for b, vf in zip(backends, pf.vfs):
            s.sh(f'result backend-vf-{vf.mac} {b.kind}')
        s.pf_check(pf)
        for _ in range(2):
            s.enable(pf, len(pf.vfs))
            s.disable(pf)

        ready_errors = []

        def on_ready(_vm):
            for b in backends:
                try:
                    b.on_ready()
                except Exception as e:  # pylint: disable=broad-except
                    ready_errors.append(f'{b.kind}: {e}')

        res = boot(name, s.text(), args=args, timeout=timeout,
                   memory=MEMORY, on_ready=on_ready)
        for err in ready_errors:
            res.checks.append(('host-setup-on-ready', False, err))
        for b in backends:
            res.checks.extend(b.checks())
        return res


def test_backends():
    """VFs on user, tap, stream, socket, dgram and vhost-user: each pings
    a peer that only its backend reaches, before and after the VFs were
    reset."""
    return run_backends('backends', [User, Tap, Stream, Socket, Dgram,
                                     VhostUser])


def test_backends_tap_vhost():
    """A VF on tap with vhost=on (vhost-net in the host kernel); skipped
    where /dev/vhost-net does not exist."""
    return run_backends('backends-tap-vhost', [TapVhost])
