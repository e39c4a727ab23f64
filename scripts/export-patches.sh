#!/usr/bin/env bash
# Export the work tree's commits since the baseline as a patch queue into
# DIR (default patches/): git format-patch files plus a series file.
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
mkdir -p "$out"
rm -f "$out"/*.patch "$out/series"
cp "$tmp"/*.patch "$out/" 2>/dev/null || true
cp "$tmp/series" "$out/series"
echo "export: $(grep -c . "$out/series" || true) patches in $out"
