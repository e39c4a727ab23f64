#!/usr/bin/env python3
"""The test command of qemu-sriov (`make check`).

Runs, for each base (10.0 and 10.2, or those given with --base): checkpatch
over every patch of its series, the qtests named in tests/qtests.list for
it (the project's own and a regression subset of QEMU's), and the guest
tests against its QEMU; once: the patch-queue tests and the deps tests
(scripts/deps.sh's apt sources on scratch apt configurations, skipped
without the Debian archive).  Each test case prints a TAP-like line whose
name starts with its base ("10.2/qtest/..."); the run ends with
"N passed, N failed".

The environment can point it at another build of one base (make
check-asan): OBJ (the QEMU build directory, default
build/qemu-BASE/build), QEMU (the QEMU binary of the qtests and guest
tests, default OBJ/qemu-system-x86_64; its name must end in -x86_64),
TEST_LOGS (the log directory, default build/test-logs/BASE) and
TEST_TIMEOUT_SCALE (a factor for every timeout, default 1).  A sanitizer
report (AddressSanitizer, LeakSanitizer, UBSan's "runtime error:") in a
qtest's output fails it, as does one in the directory SANITIZER_LOGS,
where make check-asan's QEMU writes its sanitizer output (files qemu.PID).
"""

import argparse
import os
import re
import subprocess
import sys

from testenv import (TOP, BASE, BASES, SRC, OBJ, QEMU, LOGS, TIMEOUT_SCALE,
                     SANITIZER_REPORT, SANITIZER_LOGS)

PATCHES = os.environ.get('PATCHES', os.path.join(TOP, 'patches', BASE))
# Names of the per-base suites' tests start with the base.
PREFIX = ''


class Tally:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0
        self.failures = []

    def report(self, ok, name, detail=None, skip=False):
        name = PREFIX + name
        if skip:    # DETAIL is the reason, if any
            self.skipped += 1
            print(f'skip {name}' + (f': {detail}' if detail else ''),
                  flush=True)
        elif ok:
            self.passed += 1
            print(f'ok   {name}', flush=True)
        else:
            self.failed += 1
            self.failures.append(name)
            print(f'FAIL {name}', flush=True)
            for line in (detail or '').rstrip().splitlines()[-40:]:
                print(f'     | {line}', flush=True)


    def count(self, line):
        """Count a result line that a child check.py printed."""
        if line.startswith('ok   '):
            self.passed += 1
        elif line.startswith('skip '):
            self.skipped += 1
        elif line.startswith('FAIL '):
            self.failed += 1
            self.failures.append(line[5:].strip())


def run(cmd, timeout, env=None, cwd=None):
    timeout = int(timeout * TIMEOUT_SCALE)
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, timeout=timeout,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, errors='replace', check=False)
        return p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout or ''
        if isinstance(out, bytes):
            out = out.decode('utf-8', 'replace')
        return None, out + f'\n*** timeout after {timeout} s'


def series():
    path = os.path.join(PATCHES, 'series')
    if not os.path.exists(path):
        return []
    with open(path, encoding='utf-8') as f:
        return [ln.strip() for ln in f
                if ln.strip() and not ln.startswith('#')]


def check_checkpatch(t):
    for p in series():
        rc, out = run(['perl', 'scripts/checkpatch.pl', '--no-color',
                       os.path.join(PATCHES, p)], 300, cwd=SRC)
        # Clean means no errors and no warnings either.
        clean = rc == 0 and re.search(r'total: 0 errors, 0 warnings', out)
        t.report(bool(clean), f'checkpatch/{p}', out)


def tap(t, prefix, rc, out):
    """Count TAP results from OUT; a crash or missing plan is a failure."""
    n = 0
    for line in out.splitlines():
        m = re.match(r'(not ok|ok) \d+ (.*)$', line)
        if not m:
            continue
        n += 1
        name = m.group(2)
        sm = re.search(r'\s*#\s*SKIP\s*(.*)', name)
        if sm:
            name = name[:sm.start()].strip()
            t.report(True, f'{prefix}{name}', sm.group(1).strip(), skip=True)
            continue
        t.report(m.group(1) == 'ok', f'{prefix}{name.strip()}', out)
    if rc != 0 or n == 0:
        t.report(False, f'{prefix}(exit status {rc}, {n} results)', out)


def check_patch_queue(t):
    rc, out = run(['bash', os.path.join(TOP, 'tests', 'patch-queue-test.sh')],
                  600)
    tap(t, 'patch-queue/', rc, out)


def check_deps(t, only=None):
    """tests/deps-test.sh; with -k, only when one of them is in "deps"."""
    if only and not any(o in 'deps' for o in only):
        return
    rc, out = run(['bash', os.path.join(TOP, 'tests', 'deps-test.sh')], 600)
    tap(t, 'deps/', rc, out)


def qtest_list(base=BASE):
    """(binary, filter) of tests/qtests.list for BASE: a line that starts
    with "BASE:" is for that base only."""
    items = []
    with open(os.path.join(TOP, 'tests', 'qtests.list'), encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            m = re.match(r'([0-9.]+):\s*(.*)', line)
            if m:
                if m.group(1) != base:
                    continue
                line = m.group(2)
            if line:
                parts = line.split(None, 1)
                items.append((parts[0], parts[1] if len(parts) > 1 else None))
    return items


def check_qtests(t, only=None):
    # The storage daemon of the build serves qos-test's vhost-user-blk
    # cases; a build without tools has none, and no such cases either.
    daemon = os.path.join(OBJ, 'storage-daemon', 'qemu-storage-daemon')
    env = dict(os.environ, QTEST_QEMU_BINARY=QEMU,
               QTEST_QEMU_STORAGE_DAEMON_BINARY=(
                   daemon if os.path.exists(daemon) else '/bin/false'),
               G_TEST_DBUS_DAEMON='/bin/true')
    os.makedirs(LOGS, exist_ok=True)
    for binary, filt in qtest_list():
        if only and not any(o in binary for o in only):
            continue
        # A unit test named as ../unit/NAME reports as unit/NAME
        name = os.path.normpath(os.path.join('qtest', binary))
        exe = os.path.join(OBJ, 'tests', 'qtest', binary)
        if not os.path.exists(exe):
            t.report(False, name, f'{exe} was not built')
            continue
        args = [exe, '--tap', '-k']
        if filt and filt.startswith('~'):
            rc, out = run([exe, '-l'], 120, env=env)
            rx = re.compile(filt[1:])
            paths = [p for p in out.split() if p.startswith('/') and rx.search(p)]
            if not paths:
                t.report(False, name, f'no test path matches {filt}')
                continue
            for p in paths:
                args += ['-p', p]
        rc, out = run(args, 1800, env=env, cwd=OBJ)
        with open(os.path.join(LOGS, f'{name.replace("/", "-")}.log'), 'w',
                  encoding='utf-8') as f:
            f.write(out)
        tap(t, name, rc, out)
        sanitizer(t, name, out)
        sanitizer_logs(t, name)


def sanitizer(t, name, out):
    """A sanitizer report in OUT is a failure of its own."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if SANITIZER_REPORT.search(line):
            t.report(False, f'{name} (sanitizer report)',
                     '\n'.join(lines[max(0, i - 5):i + 60]))
            return


def sanitizer_logs(t, name):
    """Reports in SANITIZER_LOGS fail NAME, the suite that just ran; each
    is kept as *.report.  Files without one (ASan's warning about
    swapcontext, which every QEMU prints) are removed."""
    if not SANITIZER_LOGS or not os.path.isdir(SANITIZER_LOGS):
        return
    for fn in sorted(os.listdir(SANITIZER_LOGS)):
        path = os.path.join(SANITIZER_LOGS, fn)
        if fn.endswith('.report') or not os.path.isfile(path):
            continue
        with open(path, encoding='utf-8', errors='replace') as f:
            text = f.read()
        if SANITIZER_REPORT.search(text):
            os.rename(path, path + '.report')
            t.report(False, f'{name} (sanitizer report {fn})',
                     f'{path}.report:\n{text}')
        else:
            os.unlink(path)


def check_compat(t, only=None):
    """tests/compat.py: virtio devices migrating between BASE's series and
    unpatched 10.2.2, both ways."""
    if only and not any(o in 'compat' for o in only):
        return
    rc, out = run([sys.executable, os.path.join(TOP, 'tests', 'compat.py')],
                  900, env=dict(os.environ, QEMU=QEMU, TEST_LOGS=LOGS))
    tap(t, '', rc, out)


def check_guest(t, only=None):
    cmd = [sys.executable, os.path.join(TOP, 'tests', 'guest', 'run.py')]
    for o in only or []:
        cmd += ['-k', o]
    # guestlib takes the build, the logs and the timeout factor from here.
    env = dict(os.environ, OBJ=OBJ, QEMU=QEMU, TEST_LOGS=LOGS,
               TEST_TIMEOUT_SCALE=str(TIMEOUT_SCALE))
    rc, out = run(cmd, 3600, env=env)
    tap(t, '', rc, out)
    sanitizer_logs(t, 'guest')


SUITES = {
    'checkpatch': check_checkpatch,
    'patch-queue': check_patch_queue,
    'deps': check_deps,
    'qtest': check_qtests,
    'compat': check_compat,
    'guest': check_guest,
}
# Suites that run for each base, in a check.py of its own (BASE set)
PER_BASE = ('checkpatch', 'qtest', 'compat', 'guest')


def run_base(t, base, opts):
    """The per-base suites of OPTS for BASE, in a child check.py."""
    cmd = [sys.executable, os.path.abspath(__file__), '--child']
    for name in PER_BASE:
        if not opts.only or name in opts.only:
            cmd += ['--only', name]
    for k in opts.k or []:
        cmd += ['-k', k]
    print(f'=== base {base}', flush=True)
    with subprocess.Popen(cmd, env=dict(os.environ, BASE=base),
                          stdout=subprocess.PIPE, text=True,
                          errors='replace') as p:
        for line in p.stdout:
            if re.match(r'\d+ passed, \d+ failed|failed: ', line):
                continue
            print(line, end='', flush=True)
            t.count(line)
    if p.returncode not in (0, 1):
        t.report(False, f'{base}/check.py (exit status {p.returncode})')


def main():
    global PREFIX  # pylint: disable=global-statement
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--only', action='append', choices=sorted(SUITES),
                    help='run only these suites')
    ap.add_argument('--base', action='append', choices=BASES,
                    help='run the per-base suites only for this base '
                         '(default: every base)')
    ap.add_argument('-k', action='append',
                    help='within qtest/guest, only tests whose name has '
                         'this (deps: runs only if this is in "deps")')
    ap.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    opts = ap.parse_args()
    t = Tally()
    if opts.child:
        PREFIX = f'{BASE}/'
    for name, fn in SUITES.items():
        if opts.only and name not in opts.only:
            continue
        if name in PER_BASE and not opts.child:
            continue
        print(f'== {PREFIX}{name}', flush=True)
        if name in ('deps', 'qtest', 'compat', 'guest'):
            fn(t, opts.k)
        else:
            fn(t)
    bases = opts.base or BASES
    if not opts.child and len(bases) > 1 and (os.environ.get('OBJ') or
                                               os.environ.get('QEMU')):
        ap.error('OBJ and QEMU name the build of one base: add --base')
    if not opts.child:
        if any(not opts.only or n in opts.only for n in PER_BASE):
            for base in bases:
                run_base(t, base, opts)
    if t.failures:
        print('failed: ' + ', '.join(t.failures))
    tail = f', {t.skipped} skipped' if t.skipped else ''
    print(f'{t.passed} passed, {t.failed} failed{tail}')
    return 1 if t.failed or not t.passed else 0


if __name__ == '__main__':
    sys.exit(main())
