# Helpers for guest scenarios (sourced; busybox sh).
result() { echo "RESULT $*"; }
pass() { echo "CHECK $1 PASS${2:+ $2}"; }
fail() { echo "CHECK $1 FAIL${2:+ $2}"; FAILED=1; }
# check NAME COMMAND...: PASS when the command succeeds.
check() {
    local n=$1; shift
    if "$@"; then pass "$n"; else fail "$n" "($*)"; fi
}
# expect NAME ACTUAL EXPECTED
expect() {
    if [ "$2" = "$3" ]; then pass "$1" "$2"; else fail "$1" "got '$2' want '$3'"; fi
}
# wait_for SECONDS COMMAND...: poll until the command succeeds, for at
# most SECONDS of wall-clock time (however long each try takes).
wait_for() {
    local end=$(( $(date +%s) + $1 )); shift
    while :; do
        "$@" 2>/dev/null && return 0
        [ "$(date +%s)" -ge "$end" ] && return 1
        usleep 100000
    done
}
