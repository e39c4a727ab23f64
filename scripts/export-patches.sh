#!/usr/bin/env bash
# Export the work tree's commits since the baseline as a patch queue into
# DIR (default patches/BASE/): git format-patch files plus a series file,
# and 0000-cover-letter.patch from the branch description (git branch
# --edit-description), which the series file does not list.
# Deterministic: exporting the same commits twice gives identical files.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/config.sh"
out=${1:-$PATCHES}

[ -d "$SRC/.git" ] || { echo "export: no work tree at $SRC" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git -C "$SRC" -c diff.renames=true -c diff.noprefix=false -c format.signoff=false \
    format-patch -q --zero-commit --no-signature --no-numbered --full-index \
    -o "$tmp" "$BASELINE_TAG..HEAD"
(cd "$tmp" && ls -1 -- *.patch 2>/dev/null || true) > "$tmp/series"
# The cover letter: the work tree's branch description (its first
# paragraph the subject), with the shortlog and diffstat of the series;
# dated like the last patch so that the export stays deterministic.
desc=$(git -C "$SRC" config --get "branch.$(git -C "$SRC" branch --show-current).description" || true)
if [ -n "$desc" ]; then
    git -C "$SRC" -c diff.noprefix=false format-patch -q --zero-commit \
        --no-signature --cover-letter --cover-from-description=subject \
        --numbered --subject-prefix="PATCH v2" -o "$tmp/cover" \
        "$BASELINE_TAG..HEAD"
    date=$(git -C "$SRC" log -1 --format=%aD HEAD)
    sed "0,/^Date: /s/^Date: .*/Date: $date/" \
        "$tmp/cover/0000-cover-letter.patch" > "$tmp/0000-cover-letter.patch"
fi
mkdir -p "$out"
rm -f "$out"/*.patch "$out/series"
cp "$tmp"/*.patch "$out/" 2>/dev/null || true
cp "$tmp/series" "$out/series"
echo "export: $(grep -c . "$out/series" || true) patches in $out"
