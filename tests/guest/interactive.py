"""Interactive guest runs: the host acts (QMP, migration, ...) while the
guest's scenario runs, and the scenario goes on afterwards.

A run is a guestlib run (same kernel, initramfs, scenario archive, console
log and CHECK/RESULT/SCENARIO-DONE lines) plus a control channel:

- The guest's second serial port (ttyS1) is a unix socket of the host.  The
  scenario gets the shell function ``host ACTION [ARGS...]``: it prints
  ``@@host ACTION ARGS`` on the console and waits (at most HOST_WAIT
  seconds, 300 by default) for one reply line from the host on ttyS1, into
  HOST_REPLY.  A reply ``error ...`` or no reply fails the check
  ``host-ACTION``.
- The host watches the console of the QEMU that runs the guest.  For every
  ``@@host`` line it calls the test's handler, ``handler(session, action,
  args)``, which does whatever the step needs through ``session`` and
  returns the reply (a string; None means ``ok``; NO_REPLY sends none, e.g.
  after a system_reset: the scenario starts again from the top).
- ``host boot`` is answered by the harness itself: the number of this boot
  (1, 2, ...), counted by the host, so that a scenario can tell a reboot
  from the first boot although nothing in the guest survives a reset.
- After a migration the handler calls ``session.switch(dst)``: the host then
  watches the destination's console (a log of its own) and replies through
  the destination's control port; the CHECK/RESULT lines of all consoles
  make up the result, in the order the guest used them.

Host-side checks (``session.check``/``session.expect``) are CHECK lines of
their own, named ``host:NAME``.  Everything the host does (markers, QMP
commands and replies, events, exit status and output of every QEMU) is
written to build/test-logs/NAME-host.log.
"""

import json
import os
import re
import shutil
import socket
import tempfile
import time
import traceback

import guestlib
from guestlib import GUEST, LOGS, QEMU, FIRMWARE, QEMUMachine

# guestlib may scale timeouts and look for sanitizer reports (make
# check-asan); use the same when it does.
SCALE = getattr(guestlib, 'TIMEOUT_SCALE', 1)
SANITIZER_REPORT = getattr(guestlib, 'SANITIZER_REPORT',
                           re.compile(r'ERROR: (Address|Leak)Sanitizer|'
                                      r'runtime error: '))

NO_REPLY = object()

# Prepended to the scenario of an interactive run (busybox sh).
HOST_SH = r'''
# The host's control port: ttyS1, opened before the first marker so that no
# reply can get lost (the 8250 driver clears the FIFO when the port opens).
exec 9<>/dev/ttyS1
stty -F /dev/ttyS1 raw -echo
HOST_WAIT=${HOST_WAIT:-300}
# host ACTION [ARGS...]: have the host do ACTION; its reply in HOST_REPLY
host() {
    HOST_REPLY=
    echo "@@host $*"
    if ! read -t $HOST_WAIT HOST_REPLY <&9; then
        fail host-$1 "no reply from the host within $HOST_WAIT s"
        return 1
    fi
    case "$HOST_REPLY" in
    error*) fail host-$1 "$HOST_REPLY"; return 1;;
    esac
    return 0
}
'''

MARKER = re.compile(r'@@host (\S+) ?(.*)$')


class HostError(Exception):
    """A host step went wrong; the message becomes the reply 'error ...'."""


class Machine:
    """One QEMU of the run: the first one, or a migration destination."""

    def __init__(self, session, tag, vm, console, ctl_path):
        self.session = session
        self.tag = tag                  # '' for the first QEMU
        self.vm = vm
        self.console = console
        self.ctl_path = ctl_path
        self.ctl = None                 # connected control socket
        self.exitcode = None
        self.output = None              # QEMU's stdout/stderr, once done
        self.done = False

    @property
    def label(self):
        return self.tag or 'main'

    def connect(self):
        if self.ctl is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.ctl_path)
            s.setblocking(False)
            self.ctl = s

    def drain(self):
        """Throw away what the guest wrote to its control port (nothing,
        normally: the port does not echo)."""
        if self.ctl:
            try:
                while self.ctl.recv(4096):
                    pass
            except (BlockingIOError, OSError):
                pass

    def send(self, line):
        self.connect()
        self.ctl.setblocking(True)
        try:
            self.ctl.sendall(line.encode() + b'\n')
        finally:
            self.ctl.setblocking(False)

    def running(self):
        return not self.done and self.vm.is_running()

    def qmp(self, cmd, **args):
        """A QMP command; returns the whole response (check 'error')."""
        resp = self.vm.qmp(cmd, **args)
        self.session.log(f'{self.label}: {cmd} {json.dumps(args)} -> '
                         f'{json.dumps(resp)[:2000]}')
        return resp

    def cmd(self, cmd, **args):
        """A QMP command that must succeed; returns its 'return' value."""
        resp = self.qmp(cmd, **args)
        if 'error' in resp:
            raise HostError(f'{self.label}: {cmd} failed: '
                            f'{resp["error"].get("desc")}')
        return resp.get('return')

    def events(self):
        """The QMP events that arrived since the last call."""
        evs = self.vm.get_qmp_events(wait=False)
        for ev in evs:
            self.session.log(f'{self.label}: event {json.dumps(ev)}')
        return evs

    def finish(self, timeout=30, quit=False):
        """Wait for this QEMU to exit (sending 'quit' first with QUIT);
        record its exit status and output.  Returns the exit status."""
        if self.done:
            return self.exitcode
        timeout *= SCALE
        try:
            if quit and self.vm.is_running():
                self.vm.shutdown(timeout=timeout)
            else:
                self.vm.wait(timeout=timeout)
        except Exception as e:  # pylint: disable=broad-except
            self.session.log(f'{self.label}: did not exit ({e}); killing it')
            try:
                self.vm.kill()
            except Exception:  # pylint: disable=broad-except
                pass
        return self._collect()

    def kill(self):
        if not self.done:
            try:
                self.vm.kill()
            except Exception:  # pylint: disable=broad-except
                pass
            self._collect()

    def _collect(self):
        self.done = True
        self.exitcode = self.vm.exitcode()
        self.output = self.vm.get_log() or ''
        if self.ctl:
            self.ctl.close()
            self.ctl = None
        self.session.log(f'{self.label}: exited with status {self.exitcode}; '
                         f'output: {self.output!r}')
        m = SANITIZER_REPORT.search(self.output)
        if m:
            start = self.output.rfind('\n', 0, m.start()) + 1
            self.session.check(
                f'{self.label}-sanitizer', False,
                '\n'.join(self.output[start:].splitlines()[:30]))
        return self.exitcode


class Session:
    """The host side of an interactive run; handlers get it."""

    def __init__(self, name, tmp, initrd, args, smp, memory, reboot,
                 qemu=QEMU, machine='q35'):
        self.name = name
        self.qemu = qemu                # the binary of the first QEMU
        self.machine = machine          # the machine type of every QEMU
        self.tmp = tmp
        self.initrd = initrd
        self.args = list(args)          # the run's own QEMU args
        self.smp = smp
        self.memory = memory
        self.reboot = reboot
        self.machines = []
        self.current = None             # the Machine running the guest
        self.boots = 0
        self.checks = []                # (name, ok, detail)
        self.data = {}                  # for the handlers
        self._log = open(os.path.join(LOGS, f'{name}-host.log'), 'w',
                         encoding='utf-8')
        self._t0 = time.monotonic()

    # --- logging and checks
    def log(self, msg):
        self._log.write(f'[{time.monotonic() - self._t0:7.1f}] {msg}\n')
        self._log.flush()

    def check(self, name, ok, detail=''):
        self.checks.append((f'host:{name}', bool(ok), detail))
        self.log(f'CHECK host:{name} {"PASS" if ok else "FAIL"} {detail}')
        return bool(ok)

    def expect(self, name, actual, want):
        ok = actual == want
        return self.check(name, ok, f'{actual!r}' if ok else
                          f'got {actual!r} want {want!r}')

    # --- QEMUs
    def launch(self, tag='', args=None, extra=(), qemu=None):
        """Start a QEMU (the run's, or the binary QEMU) with the run's
        command line (or ARGS instead of the run's own args) plus EXTRA;
        its console goes to NAME-TAG.log.  A QEMU that fails to start is
        returned exited (check .done)."""
        suffix = f'-{tag}' if tag else ''
        console = os.path.join(LOGS, f'{self.name}{suffix}.log')
        if os.path.exists(console):
            os.unlink(console)
        ctl = os.path.join(self.tmp, f'ctl{suffix}.sock')
        vm = QEMUMachine(qemu or self.qemu, base_temp_dir=self.tmp,
                         name=f'{self.name}{suffix}', qmp_timer=60 * SCALE)
        vm.add_args(*FIRMWARE,
                    '-machine', self.machine, *guestlib.accel_args(),
                    '-m', str(self.memory), '-smp', str(self.smp),
                    '-kernel', os.path.join(GUEST, 'vmlinuz'),
                    '-initrd', self.initrd,
                    '-append', 'console=ttyS0 panic=-1 quiet loglevel=4 '
                               'pci=realloc',
                    '-serial', f'file:{console}',
                    '-chardev', f'socket,id=hostctl,path={ctl},'
                                'server=on,wait=off',
                    '-serial', 'chardev:hostctl',
                    *([] if self.reboot else ['-no-reboot']),
                    '-nodefaults', '-nic', 'none',
                    *(self.args if args is None else args), *extra)
        m = Machine(self, tag, vm, console, ctl)
        self.machines.append(m)
        self.log(f'{m.label}: launch {" ".join(vm.args)}')
        try:
            vm.launch()
        except Exception as e:  # pylint: disable=broad-except
            self.log(f'{m.label}: failed to start: {e}')
            m._collect()  # pylint: disable=protected-access
            return m
        m.connect()
        return m

    def switch(self, machine):
        """The guest runs in MACHINE from now on (after a migration)."""
        self.log(f'guest now runs in {machine.label}')
        self.current = machine

    def reply(self, text):
        text = ' '.join(str(text).split())      # one line
        self.log(f'reply to {self.current.label}: {text}')
        self.current.send(text)

    def wait_until(self, what, fn, timeout, step=0.5):
        """Poll FN until it returns a true value (returned); HostError after
        TIMEOUT seconds."""
        end = time.monotonic() + timeout * SCALE
        while True:
            v = fn()
            if v:
                return v
            if time.monotonic() > end:
                raise HostError(f'timeout after {timeout} s waiting for '
                                f'{what}')
            time.sleep(step)

    def close(self):
        self._log.close()


def boot(name, scenario, handler, args=(), timeout=600, smp=1, memory=512,
         reboot=False, qemu=QEMU, machine='q35'):
    """Boot the guest with SCENARIO (shell text, which can use ``host``) and
    extra QEMU ARGS; HANDLER(session, action, args) does the host's part of
    every ``host ACTION ARGS`` step.  REBOOT: let the guest reboot (no
    -no-reboot).  QEMU is the binary to boot with (a migration destination
    may be another, see Session.launch()), MACHINE the machine type of all
    of them.  Returns a guestlib.GuestResult with the host's checks
    among its checks; .session is the Session (its .machines have the exit
    status and output of every QEMU)."""
    guestlib.accel_args()       # Skip before anything else
    timeout *= SCALE
    os.makedirs(LOGS, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'guest-{name}-')
    error = None
    s = None
    try:
        initrd = guestlib.make_initrd(tmp, HOST_SH + scenario)
        s = Session(name, tmp, initrd, args, smp, memory, reboot, qemu,
                    machine)
        first = s.launch()
        if first.done:
            error = f'QEMU failed to start:\n{first.output}'
        else:
            s.switch(first)
            error = _run(s, handler, timeout)
        # The guest powers off after SCENARIO-DONE; anything else still
        # running is stopped.
        for m in s.machines:
            if m.done:
                continue
            if m is s.current and error is None:
                m.finish()
                if m.exitcode != 0:
                    error = f'QEMU ({m.label}) exited with status ' \
                            f'{m.exitcode} after the scenario'
            else:
                s.log(f'{m.label}: still running at the end; killed')
                m.kill()
        consoles = []
        for m in s.machines:
            if m.output:
                with open(m.console, 'a', encoding='utf-8') as f:
                    f.write('\n--- QEMU output ---\n' + m.output)
            if os.path.exists(m.console):
                consoles.append(m.console)
        res = _parse(name, consoles, s.checks, error)
        res.session = s
        return res
    finally:
        if s is not None:
            for m in s.machines:
                m.kill()
            s.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _run(s, handler, timeout):
    """Watch the console of the QEMU running the guest and serve its host
    steps until SCENARIO-DONE.  Returns an error text or None."""
    start = time.monotonic()
    pos = {}                                    # console -> offset read
    while True:
        m = s.current
        text = guestlib._read(m.console)  # pylint: disable=protected-access
        off = pos.get(m.console, 0)
        end = text.rfind('\n')
        lines = text[off:end + 1].splitlines() if end >= off else []
        if end >= off:
            pos[m.console] = end + 1
        for line in lines:
            line = line.strip('\r')
            mk = MARKER.search(line)
            if mk:
                _serve(s, handler, mk.group(1), mk.group(2).strip())
            if line.startswith('SCENARIO-DONE'):
                return None
        if 'Kernel panic' in text:
            return f'kernel panic (console {m.console})'
        m.drain()
        if s.current is m and not m.running():
            return f'QEMU ({m.label}) exited before the scenario finished'
        if time.monotonic() - start > timeout:
            return f'timeout after {timeout:.0f} s'
        time.sleep(0.3)


def _serve(s, handler, action, args):
    s.log(f'guest asks: {action} {args}')
    if action == 'boot':
        s.boots += 1
        s.reply(str(s.boots))
        return
    try:
        r = handler(s, action, args)
    except Exception as e:  # pylint: disable=broad-except
        s.log(traceback.format_exc())
        s.check(f'{action}', False, f'{type(e).__name__}: {e}')
        r = f'error {e}'
    if r is NO_REPLY:
        return
    if s.current.running():
        s.reply('ok' if r is None else r)
    else:
        s.log(f'{s.current.label} is not running: no reply')


def _parse(name, consoles, host_checks, error):
    """The result of all CONSOLES (in order) plus the host's checks."""
    checks, results, rc = [], {}, None
    for log in consoles:
        r = guestlib.parse(name, log, error='-')
        checks += r.checks
        for k, v in r.results.items():
            results.setdefault(k, []).extend(v)
        if r.rc is not None:
            rc = r.rc
    if rc is None and error is None:
        error = 'no SCENARIO-DONE on the console'
    log = consoles[0] if consoles else os.path.join(LOGS, f'{name}.log')
    res = guestlib.GuestResult(name, log, rc, checks + list(host_checks),
                               results, error)
    others = consoles[1:] + [os.path.join(LOGS, f'{name}-host.log')]
    res.log = ' '.join([log] + others)
    return res
