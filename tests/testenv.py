"""Where the tests find QEMU and put their logs, shared by tests/check.py
and tests/guest/guestlib.py.

Two bases, each with its series (scripts/config.sh): BASE (10.0 or 10.2,
default 10.0) picks the one under test.  From the environment as well:
BUILD (default build/), OBJ (the QEMU build directory, default
build/qemu-BASE/build), QEMU (default OBJ/qemu-system-x86_64), TEST_LOGS
(default build/test-logs/BASE), TEST_TIMEOUT_SCALE (a factor for every
timeout, default 1), SANITIZER_LOGS (where make check-asan's QEMU writes
its sanitizer output, files qemu.PID) and ACCEL (the accelerator of the
guest tests, tcg or kvm, default tcg; see tests/guest/guestlib.py).
"""

import os
import re

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
BASES = ('10.0', '10.2')
BUILD = os.environ.get('BUILD', os.path.join(TOP, 'build'))
BASE = os.environ.get('BASE') or '10.0'
if BASE not in BASES:
    raise SystemExit(f'unknown BASE={BASE} (one of: {", ".join(BASES)})')


def src_of(base):
    """The work tree of BASE's series."""
    return os.path.join(BUILD, f'qemu-{base}')


def qemu_of(base):
    """The QEMU binary of BASE's series in its default build directory;
    base 'upstream' is 10.2.2 without a series (scripts/upstream.sh)."""
    src = (os.path.join(BUILD, 'upstream-10.2') if base == 'upstream'
           else src_of(base))
    return os.path.join(src, 'build', 'qemu-system-x86_64')


SRC = src_of(BASE)
OBJ = os.path.abspath(os.environ.get('OBJ') or os.path.join(SRC, 'build'))
QEMU = os.environ.get('QEMU') or os.path.join(OBJ, 'qemu-system-x86_64')
LOGS = os.environ.get('TEST_LOGS') or os.path.join(BUILD, 'test-logs', BASE)
TIMEOUT_SCALE = float(os.environ.get('TEST_TIMEOUT_SCALE') or 1)
# What the sanitizers print (ASan, LSan, UBSan); any of it fails a test.
SANITIZER_REPORT = re.compile(r'ERROR: (AddressSanitizer|LeakSanitizer)|'
                              r'runtime error: |'
                              r'WARNING: AddressSanitizer')
SANITIZER_LOGS = os.environ.get('SANITIZER_LOGS')
# The guest tests' accelerator: tcg, or kvm where KVM really works (else
# they are skipped, see guestlib.accel_args()).
ACCEL = os.environ.get('ACCEL') or 'tcg'

# What each series adds to composable SR-IOV, as the guest tests need it.
# Upstream 10.2.2 composes virtio-net VFs given before their PF, without
# hot-plug; the 10.2 series extends that step by step, and a guest test
# that needs a step it does not have yet is skipped, saying which.
# upstream-wire-format: the series migrates to and from unpatched 10.2.2,
# and the two series to and from each other, on the machine types they
# share.
# any-type: VFs of other virtio types than virtio-net.
# two-pfs: two PFs share a slot, and the guest finds the second one
# (upstream's PF ends the ARI chain at itself).
FEATURES = {
    '10.0': {'upstream-wire-format', 'any-order', 'any-type', 'hotplug',
             'query-pci', 'migration-checks', 'two-pfs'},
    '10.2': {'upstream-wire-format', 'any-order', 'any-type', 'query-pci',
             'hotplug', 'migration-checks', 'two-pfs'},
}
