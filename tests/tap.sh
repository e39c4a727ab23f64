# TAP helpers of the shell tests; sourced, not run.
# shellcheck shell=bash disable=SC2034  # failed: read by the sourcing test
n=0
failed=0

# t NAME COMMAND...: one TAP test; the command must succeed, its output is
# shown as a TAP comment when it does not
t() {
    local name=$1 out; shift
    n=$((n + 1))
    if out=$("$@" 2>&1); then
        echo "ok $n $name"
    else
        echo "not ok $n $name"; failed=1
        printf '%s\n' "$out" | sed 's/^/# /'
    fi
}
