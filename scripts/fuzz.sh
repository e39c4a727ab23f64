#!/usr/bin/env bash
# make fuzz: a coverage-guided campaign against the SR-IOV config paths,
# with QEMU's generic-fuzz target and libFuzzer (clang, ASan and UBSan).
#
# Builds qemu-fuzz-x86_64 of BASE in build/qemu-BASE/build-fuzz and fuzzes a q35 machine
# with a pcie-root-port and a virtio-net-pci PF with FUZZ_VFS VFs.  The
# fuzzed regions are the MCH's and the root port's config space (0xcf8/
# 0xcfc), the PCIe ECAM window (the SR-IOV capability and the VFs' config
# space are extended config space, reachable only there) and the BARs of
# the PF and the VFs.  Seeds (scripts/fuzz-seeds.py) set up ECAM, the
# bus and the BARs as firmware would and exercise the SR-IOV capability.
#
# Environment: FUZZ_TIME (seconds, default 600), FUZZ_VFS (1..255,
# default 7), FUZZ_TIMEOUT (seconds per input, default 30), FUZZ_ARGS
# (more libFuzzer options), FUZZ_DIR (default build/fuzz: corpus/, the
# run's log and findings/), NINJAFLAGS.  Exits non-zero on any finding
# (crash-*, leak-*, timeout-*, oom-*: under findings/<run>/, each with its
# stack in the log and a qtest reproducer, <finding>.qtest).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
export BASE=${BASE:-10.0}
export OBJ=${FUZZ_OBJ:-$BUILD/qemu-$BASE/build-fuzz}
. "$top/scripts/config.sh"

FUZZ_TIME=${FUZZ_TIME:-600}
FUZZ_VFS=${FUZZ_VFS:-7}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-30}
FUZZ_DIR=${FUZZ_DIR:-$BUILD/fuzz}

EXTRA_CONFIGURE="--cc=clang --cxx=clang++ --enable-fuzzing --enable-asan --enable-ubsan" \
    "$top/scripts/build.sh" qemu-fuzz-x86_64
fuzzer=$OBJ/qemu-fuzz-x86_64

# The machine: VFs first, at functions 1..FUZZ_VFS (ARI numbering).
args="-machine q35 -nodefaults -device pcie-root-port,id=rp,chassis=1,addr=0x2.0"
for ((f = FUZZ_VFS; f >= 1; f--)); do
    args+=" -device virtio-net-pci,bus=rp,addr=$(printf '0x%x.0x%x' $((f / 8)) $((f % 8)))"
    args+=",mac=52:54:00:00:01:$(printf %02x "$f"),id=vf$f,sriov-pf=pf0"
done
args+=" -device virtio-net-pci,bus=rp,addr=0x0.0x0,mac=52:54:00:00:01:00,id=pf0"
export QEMU_FUZZ_ARGS=$args
# Order matters for the seeds: mch and the root port are the PCI devices of
# op_pci_*, ECAM (at 0xb0000000) the first MMIO region.  The virtio-pci-*
# and msix-* regions are the BARs of the PF and of the enabled VFs.
export QEMU_FUZZ_OBJECTS="mch pcie-root-port pcie-mmcfg-mmio* virtio-pci-* msix-*"
export QEMU_AVOID_DOUBLE_FETCH=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:print_summary=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$top/tests/lsan.supp:print_suppressions=0}
export G_SLICE=always-malloc

run=$(date +%Y%m%d-%H%M%S)
corpus=$FUZZ_DIR/corpus
seeds=$FUZZ_DIR/seeds
findings=$FUZZ_DIR/findings/$run
log=$FUZZ_DIR/fuzz-$run.log
cov=$FUZZ_DIR/coverage-$run.txt
mkdir -p "$corpus" "$findings"
rm -rf "$seeds"
"$top/scripts/fuzz-seeds.py" "$seeds" "$FUZZ_VFS"
printf 'kw1="FUZZ"\n' > "$FUZZ_DIR/dict"

echo "fuzz: ${FUZZ_TIME} s of generic-fuzz with $FUZZ_VFS VFs; log $log"
start=$(date +%s)
rc=0
# shellcheck disable=SC2086
(cd "$FUZZ_DIR" && "$fuzzer" --fuzz-target=generic-fuzz \
    -max_total_time="$FUZZ_TIME" -timeout="$FUZZ_TIMEOUT" \
    -rss_limit_mb=8192 -print_final_stats=1 -print_coverage=1 \
    -dict="$FUZZ_DIR/dict" -artifact_prefix="$findings/" \
    ${FUZZ_ARGS:-} "$corpus" "$seeds") > "$log" 2>&1 || rc=$?
elapsed=$(( $(date +%s) - start ))

# Report.  libFuzzer's stat lines: "#N <event> cov: C ft: F corp: ..."
sed -n '/^COVERAGE:/,$p' "$log" | grep -E '^(COVERED|UNCOVERED)_FUNC' > "$cov" || true
last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
echo "fuzz: libFuzzer exit status $rc after $elapsed s"
echo "fuzz: last status line: ${last:-none}"
echo "fuzz: executions: $(stat number_of_executed_units)," \
     "$(stat average_exec_per_sec) exec/s, new corpus units: $(stat new_units_added)," \
     "corpus: $(find "$corpus" -type f | wc -l) inputs, peak RSS $(stat peak_rss_mb) MB"
# -print_coverage: COVERED_FUNC/UNCOVERED_FUNC lines with the edges of each
# function seen during fuzzing (not QEMU's start-up: realize, adoption).
for f in hw/pci/pcie_sriov.c hw/pci/pci.c hw/virtio/virtio-pci.c hw/pci/pcie.c; do
    grep -E "^(COVERED|UNCOVERED)_FUNC.*[ /]$f:" "$cov" |
        sed -n 's/^\([A-Z]*\)_FUNC: hits: [0-9]* edges: \([0-9]*\)\/\([0-9]*\) .*/\1 \2 \3/p' |
        awk -v f="$f" '{ n++; t += $3; c += $2; if ($1 == "COVERED") { fc++; tc += $3 } }
            END { printf "fuzz: coverage of %s: %d of %d functions, %d of %d edges" \
                         " (%d of %d in the covered functions)\n", f, fc, n, c, t, c, tc }'
done
echo "fuzz: functions covered per file in $cov"

n=0
for a in "$findings"/*; do
    [ -f "$a" ] || continue
    case "$a" in *.qtest|*.txt) continue ;; esac
    n=$((n + 1))
    echo "fuzz: FINDING $a"
    # The report: from the sanitizer's or libFuzzer's ERROR line on.
    { sed -n '/==ERROR:\|runtime error:\|ERROR: libFuzzer\|ALARM: working on\|ERROR: LeakSanitizer/,/^SUMMARY:/p' "$log" |
        head -80 | sed 's/^/    | /'; } || true
    # A qtest trace that reproduces it with qemu-system-x86_64 -qtest stdio.
    (cd "$FUZZ_DIR" && QTEST_LOG=1 FUZZ_SERIALIZE_QTEST=1 timeout 120 \
        "$fuzzer" --fuzz-target=generic-fuzz -runs=1 "$a") > "$a.txt" 2>&1 || true
    "$SRC/scripts/oss-fuzz/reorder_fuzzer_qtest_trace.py" "$a.txt" > "$a.qtest" 2>/dev/null || true
    echo "fuzz: qtest trace ($(wc -l < "$a.qtest") commands) in $a.qtest; replay with"
    echo "    $OBJ/qemu-system-x86_64 -display none -machine accel=qtest -m 512M $QEMU_FUZZ_ARGS -qtest stdio < $a.qtest"
done
if [ $n -gt 0 ] || [ $rc -ne 0 ]; then
    echo "fuzz: $n finding(s) in $findings; FAILED"
    exit 1
fi
rmdir "$findings" 2>/dev/null || true
echo "fuzz: no findings"
