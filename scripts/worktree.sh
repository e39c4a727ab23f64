#!/usr/bin/env bash
# Create or refresh the QEMU work tree of BASE, build/qemu-BASE: the pinned
# base unpacked with Debian's patches, one baseline commit (tag "baseline"),
# then the series in patches/BASE/ applied with git am.  When patches/BASE/
# changes, the work tree is re-created, unless it holds work that is not
# exported: then stop.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/config.sh"

stamp=$SRC.applied          # copy of patches/BASE/ as applied to the work tree

same_dirs() { diff -r -q "$1" "$2" >/dev/null 2>&1; }

if [ -d "$SRC/.git" ] && [ -d "$stamp" ]; then
    if same_dirs "$stamp" "$PATCHES"; then
        exit 0                                  # up to date
    fi
    # patches/ changed.  Is the work tree's content only what was applied?
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    dirty=$(git -C "$SRC" status --porcelain --untracked-files=no)
    "$top/scripts/export-patches.sh" "$tmp/p" >/dev/null
    if [ -z "$dirty" ] && same_dirs "$tmp/p" "$PATCHES"; then
        # The work tree already is patches/ (e.g. right after make patches).
        rm -rf "$stamp" && # The cover letter's subject and text are the branch description, from
# which make patches writes it again.
if [ -f "$PATCHES/0000-cover-letter.patch" ]; then
    tmpc=$(mktemp -d)
    subject=$(git mailinfo "$tmpc/msg" "$tmpc/patch" \
                  < "$PATCHES/0000-cover-letter.patch" | sed -n 's/^Subject: //p')
    # The text ends where the shortlog begins ("Author (N):")
    body=$(awk '/^[^ ].* \([0-9]+\):$/ { exit } { print }' "$tmpc/msg")
    git config "branch.$(git branch --show-current).description" \
        "$(printf '%s\n\n%s' "$subject" "$body")"
    rm -rf "$tmpc"
fi
cp -r "$PATCHES" "$stamp"
        exit 0
    fi
    if [ -n "$dirty" ] || ! same_dirs "$tmp/p" "$stamp"; then
        cat >&2 <<MSG
worktree: $PATCHES changed, but $SRC holds work that is not in it
(uncommitted changes, or commits that differ from the series it was created
from).  Nothing was touched.  Either export it first (commit, then
'make patches BASE=$BASE') or set it aside (e.g. 'mv $SRC $SRC.old') and
run make again.
MSG
        exit 1
    fi
    echo "worktree: $PATCHES changed; re-creating $SRC (the build directories are kept)"
    # The build directories: build/ and those of make check-asan and fuzz.
    keep=$(mktemp -d "$BUILD/.objXXXX")
    for d in "$SRC"/build "$SRC"/build-*; do
        if [ -d "$d" ]; then mv "$d" "$keep/"; fi
    done
    rm -rf "$SRC" "$stamp"
else
    keep=
    rm -rf "$SRC" "$stamp"
fi

"$top/scripts/fetch-base.sh"
mkdir -p "$BUILD"
tmpx=$(mktemp -d "$BUILD/.unpackXXXX")
(cd "$tmpx" && dpkg-source --no-check -x "$CACHE/$BASE_DSC" qemu >/dev/null)
mv "$tmpx/qemu" "$SRC" && rm -rf "$tmpx"
rm -rf "$SRC/.pc"
if [ -n "$keep" ]; then
    for d in "$keep"/build "$keep"/build-*; do
        if [ -d "$d" ]; then mv "$d" "$SRC/"; fi
    done
    rmdir "$keep" 2>/dev/null || rm -rf "$keep"
fi

cd "$SRC"
export GIT_AUTHOR_NAME=qemu-sriov GIT_AUTHOR_EMAIL=qemu-sriov@localhost
export GIT_COMMITTER_NAME=qemu-sriov GIT_COMMITTER_EMAIL=qemu-sriov@localhost
export GIT_AUTHOR_DATE="2025-01-01T00:00:00Z" GIT_COMMITTER_DATE="2025-01-01T00:00:00Z"
git init -q -b master .
git config user.name  "${GIT_USER_NAME:-$(git -C "$top" config user.name || echo qemu-sriov)}"
git config user.email "${GIT_USER_EMAIL:-$(git -C "$top" config user.email || echo qemu-sriov@localhost)}"
git add -A -f . ':!build' ':!build-*'
git commit -q -m "Baseline: qemu $BASE_VERSION (Debian source package, patches applied)"
git tag "$BASELINE_TAG"
unset GIT_AUTHOR_DATE GIT_COMMITTER_DATE GIT_AUTHOR_NAME GIT_AUTHOR_EMAIL GIT_COMMITTER_NAME GIT_COMMITTER_EMAIL
if [ -s "$PATCHES/series" ]; then
    while read -r p; do
        case "$p" in ''|'#'*) continue ;; esac
        git am -q --committer-date-is-author-date "$PATCHES/$p" || {
            git am --abort || true
            echo "worktree: patch $p does not apply" >&2
            exit 1
        }
    done < "$PATCHES/series"
fi
# The cover letter's subject and text are the branch description, from
# which make patches writes it again.
if [ -f "$PATCHES/0000-cover-letter.patch" ]; then
    tmpc=$(mktemp -d)
    subject=$(git mailinfo "$tmpc/msg" "$tmpc/patch" \
                  < "$PATCHES/0000-cover-letter.patch" | sed -n 's/^Subject: //p')
    # The text ends where the shortlog begins ("Author (N):")
    body=$(awk '/^[^ ].* \([0-9]+\):$/ { exit } { print }' "$tmpc/msg")
    git config "branch.$(git branch --show-current).description" \
        "$(printf '%s\n\n%s' "$subject" "$body")"
    rm -rf "$tmpc"
fi
cp -r "$PATCHES" "$stamp"
echo "worktree: $SRC at $(git rev-parse --short HEAD) ($(git rev-list --count $BASELINE_TAG..HEAD) patches)"
