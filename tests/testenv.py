"""Where the tests find QEMU and put their logs, shared by tests/check.py
and tests/guest/guestlib.py.

From the environment: BUILD (default build/), OBJ (the QEMU build
directory, default build/qemu/build), QEMU (default OBJ/qemu-system-x86_64),
TEST_LOGS (default build/test-logs), TEST_TIMEOUT_SCALE (a factor for every
timeout, default 1), SANITIZER_LOGS (where make check-asan's QEMU writes
its sanitizer output, files qemu.PID) and ACCEL (the accelerator of the
guest tests, tcg or kvm, default tcg; see tests/guest/guestlib.py).
"""

import os
import re

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
BUILD = os.environ.get('BUILD', os.path.join(TOP, 'build'))
SRC = os.path.join(BUILD, 'qemu')
OBJ = os.path.abspath(os.environ.get('OBJ') or os.path.join(SRC, 'build'))
QEMU = os.environ.get('QEMU') or os.path.join(OBJ, 'qemu-system-x86_64')
LOGS = os.environ.get('TEST_LOGS') or os.path.join(BUILD, 'test-logs')
TIMEOUT_SCALE = float(os.environ.get('TEST_TIMEOUT_SCALE') or 1)
# What the sanitizers print (ASan, LSan, UBSan); any of it fails a test.
SANITIZER_REPORT = re.compile(r'ERROR: (AddressSanitizer|LeakSanitizer)|'
                              r'runtime error: |'
                              r'WARNING: AddressSanitizer')
SANITIZER_LOGS = os.environ.get('SANITIZER_LOGS')
# The guest tests' accelerator: tcg, or kvm where KVM really works (else
# they are skipped, see guestlib.accel_args()).
ACCEL = os.environ.get('ACCEL') or 'tcg'
