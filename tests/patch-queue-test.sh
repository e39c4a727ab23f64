#!/usr/bin/env bash
# Tests of the patch-queue workflow (make patches / patches-check / the
# work tree refresh) on a scratch work tree, never the real one.  TAP output.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export BUILD=$scratch/build PATCHES=$scratch/patches
src=$BUILD/qemu-10.0     # the work tree of BASE 10.0 (scripts/config.sh)
# shellcheck source=tests/tap.sh
. "$top/tests/tap.sh"
not() { ! "$@"; }
g() { git -C "$src" -c user.name=t -c user.email=t@t "$@"; }

mkdir -p "$src" "$PATCHES"
g init -q -b master .
printf 'int a;\n' > "$src/a.c"
g add a.c && g commit -q -m base && g tag baseline
printf 'int a;\nint b;\n' > "$src/a.c"
g commit -q -am "pci: add b" -m "Because." --date=2025-01-02T00:00:00Z

t "export writes one patch and a series" \
    bash -c '"$0/scripts/export-patches.sh" && [ "$(cat "$PATCHES/series")" = "0001-pci-add-b.patch" ]' "$top"
cp -r "$PATCHES" "$scratch/first"
t "re-export without changes gives no diff" \
    bash -c '"$0/scripts/export-patches.sh" && diff -r "$1" "$PATCHES"' "$top" "$scratch/first"
g commit -q --amend --no-edit --date=2025-01-02T00:00:00Z --reset-author
t "export ignores commit ids and committer" \
    bash -c '"$0/scripts/export-patches.sh" && diff -r "$1" "$PATCHES"' "$top" "$scratch/first"
t "patches-check passes when exported" "$top/scripts/patches-check.sh"

printf 'int c;\n' >> "$src/a.c"
g commit -q -am "pci: add c"
t "patches-check catches an unexported commit" not "$top/scripts/patches-check.sh"
t "patches-check names the difference" \
    bash -c '"$0/scripts/patches-check.sh" | grep -q "differ from patches/"' "$top"
"$top/scripts/export-patches.sh" >/dev/null
t "patches-check passes after make patches" "$top/scripts/patches-check.sh"

printf 'int d;\n' >> "$src/a.c"
t "patches-check catches an uncommitted change" not "$top/scripts/patches-check.sh"
g checkout -q -- a.c

# The work tree refresh must refuse to re-create a tree holding work that is
# not in patches/, and touch nothing.
mkdir -p "$src.applied" && cp -r "$PATCHES"/. "$src.applied/"
printf 'int e;\n' >> "$src/a.c"
g commit -q -am "pci: add e (not exported)"
echo "# changed by a pull" >> "$PATCHES/series"
head=$(g rev-parse HEAD)
t "refresh refuses a tree with unexported work" \
    bash -c '! "$0/scripts/worktree.sh" >"$1/out" 2>&1 && grep -q "holds work that is not in" "$1/out"' "$top" "$scratch"
t "refresh left the tree alone" bash -c '[ "$(git -C "$0" rev-parse HEAD)" = "$1" ] && grep -q "int e" "$0/a.c"' "$src" "$head"

# The cover letter comes from the branch description, outside the series
g checkout -q -- a.c 2>/dev/null; g reset -q --hard "$head~1"
g config branch.master.description "$(printf 'pci: The subject\n\nThe text.')"
"$top/scripts/export-patches.sh" >/dev/null
t "export writes the cover letter from the branch description" \
    grep -q '^Subject: \[PATCH v2 0/[0-9]*\] pci: The subject' "$PATCHES/0000-cover-letter.patch"
t "the series does not list the cover letter" \
    not grep -q cover-letter "$PATCHES/series"
cp -r "$PATCHES" "$scratch/cover"
sleep 1
t "the cover letter is exported the same way again" \
    bash -c '"$0/scripts/export-patches.sh" && diff -r "$1" "$PATCHES"' "$top" "$scratch/cover"

echo "1..$n"
exit $failed
