#!/usr/bin/env bash
# make check-asan: build the series of BASE with AddressSanitizer and UBSan
# into build/qemu-BASE/build-asan (the options of build.sh plus --enable-asan
# --enable-ubsan), with the qtests of tests/qtests.list, and run the qtests
# and the guest tests of tests/check.py against that build.  Any sanitizer
# report fails the test that produced it: QEMU aborts on the first report
# (abort_on_error, halt_on_error) and check.py/guestlib look for reports in
# the output as well.  Logs go to build/test-logs-asan/BASE/.
#
# QEMU runs through a wrapper (build-asan/lsan/qemu-system-x86_64) that
# writes its sanitizer output to build/test-logs-asan/BASE/sanitizer/qemu.PID
# (log_path) rather than to stderr: every ASan QEMU warns there about
# swapcontext (QEMU's coroutines), and tests that expect QEMU to print
# nothing, or a given error, should see what they see without sanitizers.
# check.py and guestlib read the files (SANITIZER_LOGS).
#
# Leak detection is on for QEMU; leaks of unmodified base QEMU would be
# suppressed in tests/lsan.supp.  It is off for the qtest programs
# themselves: their leaks are test-harness matters (qos-test's graph walker
# never frees its test paths, which LeakSanitizer reports in every forked
# subprocess test), and their stacks cannot be told apart (glib has no
# frame pointers, so ASan's fast unwinder stops at g_malloc).
#
# Environment: NINJAFLAGS (e.g. -j2), TEST_TIMEOUT_SCALE (default 4: guests
# under ASan run about three times slower), CHECK_ARGS (more arguments for
# tests/check.py, e.g. "-k sriov").
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export BASE=${BASE:-10.0}
BUILD=${BUILD:-$top/build}
export OBJ=${ASAN_OBJ:-$BUILD/qemu-$BASE/build-asan}
. "$top/scripts/config.sh"

# The qtests of tests/qtests.list for BASE ("BASE:" lines are for one base)
qtests=$(sed -n -e "s/^${BASE//./\\.}:[[:space:]]*//" -e '/^[0-9.]*:/d' \
             -e 's/^\([^#][^ ]*\).*/tests\/qtest\/\1/p' "$top/tests/qtests.list" |
         sort -u)
# shellcheck disable=SC2086
EXTRA_CONFIGURE="--enable-asan --enable-ubsan" "$top/scripts/build.sh" $qtests

# Stop at the first report, and abort so that the qtest harness (which
# watches for signals) sees it as well.  GSlice would hide allocations from
# ASan; glib before 2.76 still uses it.
common=abort_on_error=1:halt_on_error=1:print_summary=1
export ASAN_OPTIONS=$common:detect_leaks=0
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
export G_SLICE=always-malloc G_DEBUG=gc-friendly
export TEST_LOGS=$BUILD/test-logs-asan/$BASE
export SANITIZER_LOGS=$TEST_LOGS/sanitizer
rm -rf "$SANITIZER_LOGS"
mkdir -p "$SANITIZER_LOGS" "$OBJ/lsan"
# The wrapper's name ends in -x86_64: libqtest takes the target from it.
cat > "$OBJ/lsan/qemu-system-x86_64" <<WRAP
#!/bin/sh
# QEMU of make check-asan, with leak detection and the sanitizer output in
# \$SANITIZER_LOGS/qemu.PID (scripts/check-asan.sh)
ASAN_OPTIONS=$common:detect_leaks=1:log_path=$SANITIZER_LOGS/qemu \\
UBSAN_OPTIONS=\$UBSAN_OPTIONS:log_path=$SANITIZER_LOGS/qemu \\
LSAN_OPTIONS=suppressions=$top/tests/lsan.supp:print_suppressions=0 \\
exec "$OBJ/qemu-system-x86_64" "\$@"
WRAP
chmod +x "$OBJ/lsan/qemu-system-x86_64"
export QEMU=$OBJ/lsan/qemu-system-x86_64
export TEST_TIMEOUT_SCALE=${TEST_TIMEOUT_SCALE:-4}

start=$(date +%s)
rc=0
# shellcheck disable=SC2086
"$top/tests/check.py" --base "$BASE" --only qtest --only guest ${CHECK_ARGS:-} || rc=$?
echo "check-asan: $(( $(date +%s) - start )) s with $OBJ (logs in $TEST_LOGS)"
exit $rc
