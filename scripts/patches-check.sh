#!/usr/bin/env bash
# Fail when the work tree holds work that is not in patches/: uncommitted
# changes to tracked files, or commits that differ from the series.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/config.sh"
[ -d "$SRC/.git" ] || { echo "patches-check: no work tree, nothing to check"; exit 0; }
rc=0
if [ -n "$(git -C "$SRC" status --porcelain --untracked-files=no)" ]; then
    echo "patches-check: $SRC has uncommitted changes:"
    git -C "$SRC" status --short --untracked-files=no | sed 's/^/  /'
    rc=1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$top/scripts/export-patches.sh" "$tmp/p" >/dev/null
if ! diff -r -q "$tmp/p" "$PATCHES" >"$tmp/d" 2>&1; then
    echo "patches-check: the work tree's commits differ from patches/ (run 'make patches'):"
    sed 's/^/  /' "$tmp/d"
    rc=1
fi
[ $rc = 0 ] && echo "patches-check: ok"
exit $rc
