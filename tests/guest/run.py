#!/usr/bin/env python3
"""Run the guest tests (tests/guest/test_*.py) and print TAP.

Each test module defines functions named test_*; a test boots one or more
guests through guestlib.boot() and returns the GuestResult(s) or raises
AssertionError, or guestlib.Skip when it cannot run here (a "# SKIP"
line; with ACCEL=kvm where KVM does not work, every test is skipped
without being started).  Usage: run.py [-k SUBSTRING] [--list]
"""

import argparse
import importlib
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import guestlib  # noqa: E402  pylint: disable=wrong-import-position


def collect():
    tests = []
    for fn in sorted(os.listdir(HERE)):
        if fn.startswith('test_') and fn.endswith('.py'):
            mod = importlib.import_module(fn[:-3])
            for name in sorted(dir(mod)):
                if name.startswith('test_'):
                    tests.append((f'{fn[5:-3]}/{name[5:]}', getattr(mod, name)))
    return tests


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('-k', action='append', default=[])
    ap.add_argument('--list', action='store_true')
    opts = ap.parse_args()
    tests = [t for t in collect()
             if not opts.k or any(k in t[0] for k in opts.k)]
    if opts.list:
        for name, _ in tests:
            print(name)
        return 0
    print(f'1..{len(tests)}', flush=True)
    # ACCEL=kvm where KVM does not work skips all, none is started.
    try:
        guestlib.accel_args()
        skip_all = None
    except guestlib.Skip as e:
        skip_all = str(e)
        print(f'skip: {skip_all}', flush=True)
    except ValueError as e:
        print(f'Bail out! {e}', flush=True)
        return 1
    failed = 0
    for i, (name, fn) in enumerate(tests, 1):
        if skip_all:
            print(f'ok {i} guest/{name} # SKIP {skip_all}', flush=True)
            continue
        t0 = time.monotonic()
        try:
            res = fn()
            results = res if isinstance(res, (list, tuple)) else [res]
            bad = [r for r in results if r is not None and not r.ok]
            if bad:
                raise AssertionError('\n'.join(r.summary() for r in bad))
            print(f'ok {i} guest/{name} ({time.monotonic() - t0:.0f} s)',
                  flush=True)
        except guestlib.Skip as e:
            print(f'ok {i} guest/{name} # SKIP {e}', flush=True)
        except Exception as e:  # pylint: disable=broad-except
            failed += 1
            print(f'not ok {i} guest/{name}', flush=True)
            detail = (str(e) if isinstance(e, AssertionError)
                      else traceback.format_exc())
            for line in detail.splitlines():
                print(f'# {line}', flush=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
