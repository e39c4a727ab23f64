"""Boot the qemu-sriov Linux guest test bed (under TCG, or KVM with
ACCEL=kvm) and collect results.

A guest run is: our QEMU, the Debian kernel and busybox initramfs from
build/guest, a scenario script appended to the initramfs as a second cpio
archive, and a serial console written to a log file.  The guest's /init
prints ``RESULT``/``CHECK`` lines and ``SCENARIO-DONE rc=N`` and powers off.
QMP goes through QEMU's own python/qemu package from the work tree.

A run fails on timeout, kernel panic, missing SCENARIO-DONE, a failed
CHECK, a non-zero QEMU exit or a sanitizer report in QEMU's output; the
console log of every run is kept in build/test-logs/.

From the environment: QEMU (the binary; default OBJ/qemu-system-x86_64,
OBJ defaulting to build/qemu-BASE/build), TEST_LOGS (default build/test-logs/BASE),
TEST_TIMEOUT_SCALE, a factor for the timeouts of slower builds such as
make check-asan's (default 1), and SANITIZER_LOGS, the directory where an
ASan build of QEMU writes its sanitizer output (ASAN_OPTIONS log_path,
files qemu.PID; make check-asan), so that QEMU's own output stays as
without sanitizers.

ACCEL (tests/testenv.py) picks the accelerator: tcg (the default, QEMU's
default CPU model) or kvm (with -cpu host).  /dev/kvm alone proves
nothing (on machines without vmx/svm it exists, and guests hang), so with
ACCEL=kvm kvm_problem() first checks that KVM works: the CPU flags,
/dev/kvm's API version and KVM_CREATE_VM, QEMU's query-kvm, and a short
boot of the guest kernel.  Where it does not, boot() raises Skip and
every guest test is reported as skipped ("KVM requested (ACCEL=kvm) but
not usable here: REASON"), never run under another accelerator.
"""

import fcntl
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..'))
# pylint: disable=wrong-import-position
from testenv import (BUILD, BASE, SRC, QEMU, LOGS, TIMEOUT_SCALE,
                     SANITIZER_REPORT, SANITIZER_LOGS, ACCEL, FEATURES)

GUEST = os.path.join(BUILD, 'guest')


def sanitizer_log(pid):
    """The sanitizer report that the QEMU with PID wrote to SANITIZER_LOGS,
    or None.  A file with a report is renamed to *.report (tests/check.py
    removes the others and reports any left behind)."""
    if not SANITIZER_LOGS or not pid:
        return None
    path = os.path.join(SANITIZER_LOGS, f'qemu.{pid}')
    text = _read(path)
    if not SANITIZER_REPORT.search(text):
        return None
    os.rename(path, path + '.report')
    return f'{path}.report:\n{text}'
FIRMWARE = ['-L', '/usr/share/seabios', '-L', '/usr/lib/ipxe/qemu',
            '-L', '/usr/share/qemu']


class Skip(Exception):
    """The test cannot run here (the message says why); run.py reports it
    as skipped."""


def has(feature):
    """Whether the series of BASE has FEATURE (testenv.FEATURES)."""
    return feature in FEATURES[BASE]


def needs(*features):
    """Decorator of a guest test that needs these features of the series
    (testenv.FEATURES): on a base whose series does not have them yet, the
    test is skipped, saying which."""
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            missing = [f for f in features if not has(f)]
            if missing:
                raise Skip(f'the {BASE} series does not have '
                           f'{", ".join(missing)} yet')
            return fn(*args, **kwargs)
        return wrapper
    return deco


KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01


@functools.lru_cache(maxsize=None)
def kvm_problem():
    """Why KVM cannot run the guests here, or None when it can."""
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            flags = set()
            for line in f:
                if line.startswith('flags'):
                    flags.update(line.split(':', 1)[1].split())
    except OSError as e:
        return f'cannot read /proc/cpuinfo: {e.strerror}'
    if not flags & {'vmx', 'svm'}:
        return 'the CPU has no vmx or svm flag in /proc/cpuinfo'
    try:
        fd = os.open('/dev/kvm', os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return f'cannot open /dev/kvm: {e.strerror}'
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION)
        if version != 12:
            return f'KVM_GET_API_VERSION is {version}, not 12'
        os.close(fcntl.ioctl(fd, KVM_CREATE_VM, 0))
    except OSError as e:
        return f'KVM ioctl on /dev/kvm failed: {e.strerror}'
    finally:
        os.close(fd)
    return _qemu_kvm_problem() or _kvm_boot_problem()


def _kvm_qemu(*args):
    return [QEMU, *FIRMWARE, '-machine', 'q35', '-accel', 'kvm',
            '-cpu', 'host', '-nodefaults', '-display', 'none', *args]


def _qemu_kvm_problem():
    """QEMU, stopped (-S), must report KVM present and enabled."""
    qmp = ''.join(json.dumps({'execute': c}) + '\n'
                  for c in ('qmp_capabilities', 'query-kvm', 'quit'))
    try:
        p = subprocess.run(_kvm_qemu('-S', '-qmp', 'stdio'), input=qmp,
                           capture_output=True, text=True, check=False,
                           timeout=60 * TIMEOUT_SCALE)
    except subprocess.TimeoutExpired:
        return 'QEMU -accel kvm -S did not answer query-kvm in time'
    except OSError as e:
        return f'cannot run {QEMU}: {e.strerror}'
    for line in p.stdout.splitlines():
        try:
            ret = json.loads(line).get('return')
        except ValueError:
            continue
        if isinstance(ret, dict) and 'present' in ret:
            if ret.get('present') and ret.get('enabled'):
                return None
            return f'QEMU query-kvm: {ret}'
    err = (p.stderr.strip().splitlines() or ['no output'])[-1]
    return f'QEMU -accel kvm failed (status {p.returncode}): {err}'


def _kvm_boot_problem():
    """The guest kernel, without an initramfs, must boot under KVM until it
    panics for want of a root file system (and QEMU exits, -no-reboot)."""
    kernel = os.path.join(GUEST, 'vmlinuz')
    if not os.path.exists(kernel):
        return None         # the tests fail for want of it anyway
    timeout = 60 * TIMEOUT_SCALE
    try:
        p = subprocess.run(
            ['timeout', '-s', 'KILL', str(int(timeout)),
             *_kvm_qemu('-m', '256', '-kernel', kernel, '-append',
                        'console=ttyS0 panic=-1 loglevel=3',
                        '-serial', 'stdio', '-no-reboot')],
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            errors='replace', check=False, timeout=timeout + 30)
    except (subprocess.TimeoutExpired, OSError) as e:
        return f'QEMU -accel kvm -kernel: {e}'
    if 'Kernel panic' in p.stdout:
        return None
    if p.returncode in (124, -9, 137):
        return (f'the guest kernel did not boot under KVM within '
                f'{timeout:.0f} s')
    err = (p.stderr.strip().splitlines() or ['no output'])[-1]
    return f'the guest kernel under KVM: QEMU status {p.returncode}: {err}'


def accel_args():
    """The QEMU options for ACCEL; Skip when ACCEL=kvm and KVM does not
    work here."""
    if ACCEL == 'tcg':
        return ['-accel', 'tcg']
    if ACCEL == 'kvm':
        problem = kvm_problem()
        if problem:
            raise Skip('KVM requested (ACCEL=kvm) but not usable here: '
                       f'{problem}')
        return ['-accel', 'kvm', '-cpu', 'host']
    raise ValueError(f'ACCEL={ACCEL!r}: use tcg or kvm')

sys.path.insert(0, os.path.join(SRC, 'python'))
from qemu.machine import QEMUMachine  # noqa: E402  pylint: disable=C0413


# Lines of the console that a failed run prints (GuestResult.summary).
CONSOLE_TAIL = 25


class GuestResult:
    """What one guest run produced."""

    def __init__(self, name, log, rc, checks, results, error):
        self.name = name
        self.log = log
        self.rc = rc
        self.checks = checks          # list of (name, ok, detail)
        self.results = results        # key -> list of values
        self.error = error            # harness-level failure or None

    @property
    def ok(self):
        return (self.error is None and self.rc == 0 and
                bool(self.checks) and all(c[1] for c in self.checks))

    def result(self, key, default=None):
        vals = self.results.get(key)
        return vals[-1] if vals else default

    def summary(self):
        lines = []
        if self.error:
            lines.append(f'error: {self.error}')
        for name, ok, detail in self.checks:
            if not ok:
                lines.append(f'FAIL {name} {detail}')
        if self.rc not in (0, None):
            lines.append(f'scenario rc={self.rc}')
        lines.append(f'console log: {self.log}')
        if self.error:
            # CI keeps only what the test prints: the end of the console
            # says why the guest died (a panic's reason, a stall report).
            tail = _read(self.log).splitlines()[-CONSOLE_TAIL:]
            lines += [f'console: {line}' for line in tail]
        return '\n'.join(lines)


def _cpio(files, out):
    """Write a newc cpio archive with FILES (path -> (mode, bytes))."""
    with tempfile.TemporaryDirectory() as d:
        for path, (mode, data) in files.items():
            p = os.path.join(d, path.lstrip('/'))
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, 'wb') as f:
                f.write(data)
            os.chmod(p, mode)
        names = subprocess.run(['find', '.'], cwd=d, check=True,
                               capture_output=True).stdout
        with open(out, 'wb') as f:
            subprocess.run(['cpio', '-o', '-H', 'newc', '--quiet'], cwd=d,
                           input=names, stdout=f, check=True)


def make_initrd(tmp, scenario, extra=()):
    """Write TMP/initrd: the test bed's initramfs, the cpio archives EXTRA
    (paths; later files replace earlier ones) and SCENARIO as
    /scenario.sh; return its path."""
    initrd = os.path.join(tmp, 'initrd')
    _cpio({'/scenario.sh': (0o755, scenario.encode())},
          os.path.join(tmp, 'scenario.cpio'))
    with open(initrd, 'wb') as out:
        for part in (os.path.join(GUEST, 'initramfs.cpio'), *extra,
                     os.path.join(tmp, 'scenario.cpio')):
            with open(part, 'rb') as f:
                shutil.copyfileobj(f, out)
    return initrd


def boot(name, scenario, args=(), timeout=600, smp=1, memory=512,
         on_ready=None, append='', initrd_extra=()):
    """Boot the guest with SCENARIO (shell text) and extra QEMU ARGS.

    APPEND is added to the kernel command line; INITRD_EXTRA are cpio
    archives added to the initramfs (make_initrd).

    ON_READY, if given, is called with the QEMUMachine once the guest has
    printed GUEST-READY (for QMP interaction during the run).
    Returns a GuestResult.
    """
    accel = accel_args()
    timeout *= TIMEOUT_SCALE
    os.makedirs(LOGS, exist_ok=True)
    log = os.path.join(LOGS, f'{name}.log')
    tmp = tempfile.mkdtemp(prefix=f'guest-{name}-')
    error = None
    try:
        initrd = make_initrd(tmp, scenario, initrd_extra)
        if os.path.exists(log):
            os.unlink(log)
        vm = QEMUMachine(QEMU, base_temp_dir=tmp, name=name,
                         qmp_timer=60 * TIMEOUT_SCALE)
        vm.add_args(*FIRMWARE,
                    '-machine', 'q35', *accel,
                    '-m', str(memory), '-smp', str(smp),
                    '-kernel', os.path.join(GUEST, 'vmlinuz'),
                    '-initrd', initrd,
                    '-append', 'console=ttyS0 panic=-1 quiet loglevel=4 '
                               'pci=realloc' + (f' {append}' if append
                                                else ''),
                    '-serial', f'file:{log}',
                    '-no-reboot', '-nodefaults', '-nic', 'none', *args)
        start = time.monotonic()
        ready = False
        try:
            vm.launch()
        except Exception as e:  # pylint: disable=broad-except
            error = f'QEMU failed to start: {e}\n{vm.get_log() or ""}'
            return GuestResult(name, log, None, [], {}, error)
        pid = vm.get_pid()
        try:
            while True:
                text = _read(log)
                if not ready and 'GUEST-READY' in text:
                    ready = True
                    if on_ready:
                        on_ready(vm)
                if 'SCENARIO-DONE' in text:
                    break
                if 'Kernel panic' in text:
                    error = 'kernel panic'
                    break
                if not vm.is_running():
                    error = 'QEMU exited before the scenario finished'
                    break
                if time.monotonic() - start > timeout:
                    error = f'timeout after {timeout:.0f} s'
                    break
                time.sleep(0.5)
        finally:
            if error is None:
                # The guest powers off by itself after SCENARIO-DONE.
                try:
                    vm.wait(timeout=30 * TIMEOUT_SCALE)
                except Exception:  # pylint: disable=broad-except
                    error = 'QEMU did not exit after the scenario'
                if error is None and vm.exitcode() != 0:
                    error = f'QEMU exited with status {vm.exitcode()}'
            if error is not None:
                try:
                    vm.kill()
                except Exception:  # pylint: disable=broad-except
                    pass
            qlog = (vm.get_log() or '') + (sanitizer_log(pid) or '')
            if qlog:
                with open(log, 'a', encoding='utf-8') as f:
                    f.write('\n--- QEMU output ---\n' + qlog)
                m = SANITIZER_REPORT.search(qlog)
                if m:
                    start = qlog.rfind('\n', 0, m.start()) + 1
                    report = '\n'.join(qlog[start:].splitlines()[:30])
                    error = ((error + '; ') if error else '') + \
                        'sanitizer report in QEMU output:\n' + report
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return parse(name, log, error)


def _read(path):
    try:
        with open(path, 'rb') as f:
            return f.read().decode('utf-8', 'replace')
    except FileNotFoundError:
        return ''


def parse(name, log, error=None):
    text = _read(log)
    checks, results, rc = [], {}, None
    for line in text.splitlines():
        line = line.strip('\r')
        m = re.match(r'CHECK (\S+) (PASS|FAIL) ?(.*)$', line)
        if m:
            checks.append((m.group(1), m.group(2) == 'PASS', m.group(3)))
            continue
        m = re.match(r'RESULT (\S+) ?(.*)$', line)
        if m:
            results.setdefault(m.group(1), []).append(m.group(2))
            continue
        m = re.match(r'SCENARIO-DONE rc=(\d+)', line)
        if m:
            rc = int(m.group(1))
    if rc is None and error is None:
        error = 'no SCENARIO-DONE on the console'
    return GuestResult(name, log, rc, checks, results, error)
