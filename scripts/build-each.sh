#!/usr/bin/env bash
# Build every patch of BASE's series on its own: each commit of the work
# tree after the baseline, one at a time, in a git worktree of its own
# (build/each-BASE, its build directory kept from run to run, so ccache
# and ninja rebuild only what a patch changes).  Builds qemu-system-x86_64
# and, for a patch that touches tests/, the qtests of tests/qtests.list.
# Prints a line per patch and fails at the first that does not build.
#
#   scripts/build-each.sh            # BASE=10.0 by default
#   BASE=10.2 scripts/build-each.sh [FIRST]   # from the commit FIRST on
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/config.sh"

wt=$BUILD/each-$BASE
[ -d "$SRC/.git" ] || { echo "build-each: no work tree at $SRC" >&2; exit 1; }
if [ ! -e "$wt/.git" ]; then
    rm -rf "$wt"
    git -C "$SRC" worktree prune
    git -C "$SRC" worktree add -q --detach "$wt" "$BASELINE_TAG"
fi
qtests=$(sed -n -e "s/^${BASE//./\\.}:[[:space:]]*//" -e '/^[0-9.]*:/d' \
             -e 's/^\([^#][^ ]*\).*/tests\/qtest\/\1/p' "$top/tests/qtests.list" |
         sort -u)
range="$BASELINE_TAG..HEAD"
if [ $# -gt 0 ]; then
    range="$1~1..HEAD"
fi
n=0
for c in $(git -C "$SRC" rev-list --reverse "$range"); do
    n=$((n + 1))
    subject=$(git -C "$SRC" log -1 --format=%s "$c")
    git -C "$wt" checkout -q --detach "$c"
    targets=
    if git -C "$SRC" diff-tree --no-commit-id --name-only -r "$c" | grep -q '^tests/'; then
        # Those that exist at this patch: a later one may add a qtest
        for q in $qtests; do
            if [ -e "$wt/$q.c" ]; then
                targets="$targets $q"
            fi
        done
    fi
    start=$(date +%s)
    # shellcheck disable=SC2086
    if ! QEMU_SRC=$wt OBJ=$wt/build "$top/scripts/build.sh" $targets \
            > "$BUILD/each-$BASE.log" 2>&1; then
        tail -30 "$BUILD/each-$BASE.log"
        echo "FAIL $n $subject (build log: $BUILD/each-$BASE.log)"
        exit 1
    fi
    echo "ok   $n $subject ($(( $(date +%s) - start )) s)"
done
echo "build-each: $n patches of the $BASE series each build on their own"
