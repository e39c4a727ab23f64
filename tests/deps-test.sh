#!/usr/bin/env bash
# Tests of scripts/deps.sh's choice of the bookworm-backports source, on
# scratch apt configurations (APT_ETC for deps.sh, APT_CONFIG for apt):
# never the machine's /etc/apt, and nothing is installed.  Each case runs
# `deps.sh --sources`, then `apt-get update`, which must accept the
# sources (no "Conflicting values set for option Signed-By"), and
# `apt-cache policy`, which must offer meson >= 1.5 from
# bookworm-backports.  The archive is the machine's own (the URI of its
# bookworm source).  TAP output; without the archive (or off Debian 12)
# it prints "skip: REASON" and one skipped test.
#
# DEPS_SH names the script under test (default scripts/deps.sh).
# shellcheck disable=SC2317 # the checks are called through t()
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
DEPS_SH=${DEPS_SH:-$top/scripts/deps.sh}
MESON_MIN=1.5
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

skip() {
    echo "skip: $1"
    echo "ok 1 apt sources # SKIP $1"
    echo "1..1"
    exit 0
}

# shellcheck source=tests/tap.sh
. "$top/tests/tap.sh"

command -v apt-get >/dev/null || skip "no apt-get"
# shellcheck source=/dev/null
. /etc/os-release
[ "${VERSION_CODENAME:-}" = bookworm ] ||
    skip "not Debian 12 (bookworm-backports is for bookworm only)"
[ -f "$KEYRING" ] || skip "no $KEYRING"

# The machine's Debian archive: the URI of its bookworm source.
uri=$( { cat /etc/apt/sources.list.d/*.sources 2>/dev/null; echo; } | awk '
        BEGIN { RS = ""; FS = "\n" }
        { u = ""; ok = 0
          for (i = 1; i <= NF; i++) {
              if ($i ~ /^URIs:/) { split(substr($i, 6), w, " "); u = w[1] }
              if ($i ~ /^Suites:/) { k = split(substr($i, 8), w, " ")
                  for (j = 1; j <= k; j++) if (w[j] == "bookworm") ok = 1 } }
          if (ok && u != "" && !f) f = u }
        END { if (f != "") print f }')
[ -n "$uri" ] || uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk '$1 == "deb" { sub(/\[[^]]*\]/, ""); if ($3 == "bookworm" && !f) f = $2 }
         END { if (f != "") print f }')
[ -n "$uri" ] || skip "no bookworm source in /etc/apt to take the archive URI from"

# apt-get must not install anything, whatever deps.sh does.
mkdir -p "$scratch/bin"
cat > "$scratch/bin/apt-get" <<'EOF'
#!/bin/sh
for a in "$@"; do
    case $a in install|upgrade|dist-upgrade|full-upgrade|remove|purge|source|download)
        echo "deps-test: refusing apt-get $*" >&2; exit 1 ;;
    esac
done
exec /usr/bin/apt-get "$@"
EOF
chmod +x "$scratch/bin/apt-get"
export PATH=$scratch/bin:$PATH

# Settings of the machine's apt that the scratch ones keep: proxies and
# the checks of the Release files' dates (for snapshot archives).
apt-config dump 2>/dev/null |
    grep -E '^Acquire::(https?|ftp)::Proxy|^Acquire::Check-(Valid-Until|Date) ' \
    > "$scratch/inherited.conf" || true
# The index files are shared by the cases: only the first downloads them.
mkdir -p "$scratch/lists/partial" "$scratch/cache/archives/partial"
: > "$scratch/status"

# new_case NAME: a scratch apt configuration in $scratch/NAME; prints its
# directory.  NAME/etc is APT_ETC, NAME/apt.conf the APT_CONFIG.
new_case() {
    local d=$scratch/$1
    mkdir -p "$d/etc/sources.list.d" "$d/etc/apt.conf.d" \
             "$d/etc/preferences.d" "$d/state"
    cat > "$d/apt.conf" <<EOF
Dir::Etc "$d/etc";
Dir::Etc::main "apt.conf";
Dir::Etc::parts "apt.conf.d";
Dir::Etc::sourcelist "sources.list";
Dir::Etc::sourceparts "sources.list.d";
Dir::Etc::preferences "preferences";
Dir::Etc::preferencesparts "preferences.d";
Dir::Etc::trusted "$d/etc/trusted.gpg";
Dir::Etc::trustedparts "/etc/apt/trusted.gpg.d";
Dir::State "$d/state";
Dir::State::lists "$scratch/lists";
Dir::State::status "$scratch/status";
Dir::Cache "$scratch/cache";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Dir::Log "$d/log";
APT::Architectures { "$(dpkg --print-architecture)"; };
Acquire::Languages "none";
Acquire::GzipIndexes "true";
Acquire::Retries "0";
Acquire::http::Timeout "20";
Acquire::https::Timeout "20";
EOF
    [ "$(id -u)" = 0 ] && echo 'APT::Sandbox::User "root";' >> "$d/apt.conf"
    cat "$scratch/inherited.conf" >> "$d/apt.conf"
    echo "$d"
}
aptc() { local d=$1; shift; APT_CONFIG=$d/apt.conf "$@"; }

# Without the archive there is nothing to test: a scratch configuration
# with just backports must update.
d=$(new_case probe)
cat > "$d/etc/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: $KEYRING
EOF
if ! out=$(aptc "$d" timeout 120 apt-get update 2>&1) ||
        printf '%s\n' "$out" | grep -q '^[EW]: '; then
    skip "cannot reach $uri: $(printf '%s\n' "$out" | grep -E '^[EW]: ' | head -n1)"
fi

# Checks of one case.
deps_sources() {    # deps_sources DIR: run deps.sh --sources there
    APT_ETC=$1/etc APT_CONFIG=$1/apt.conf bash "$DEPS_SH" --sources
}
apt_accepts() {     # apt-get update succeeds, without errors or warnings
    local out rc
    out=$(aptc "$1" timeout 300 apt-get update 2>&1); rc=$?
    printf '%s\n' "$out"
    [ "$rc" = 0 ] && ! printf '%s\n' "$out" | grep -qE '^[EW]: |Conflicting values'
}
meson_from_backports() {
    local out cand
    out=$(aptc "$1" apt-cache -t bookworm-backports policy meson 2>&1) || { printf '%s\n' "$out"; return 1; }
    printf '%s\n' "$out"
    cand=$(printf '%s\n' "$out" | awk '/Candidate:/ { print $2 }')
    [ -n "$cand" ] && [ "$cand" != "(none)" ] &&
        dpkg --compare-versions "$cand" ge "$MESON_MIN" &&
        printf '%s\n' "$out" | grep -qF "$uri bookworm-backports/main"
}
ours() { echo "$1/etc/sources.list.d/qemu-sriov-backports.list"; }
absent() { [ ! -e "$1" ] || { echo "$1 exists:"; cat "$1"; false; }; }
case_checks() {     # case_checks NAME DIR: apt's side
    t "$1: apt-get update accepts the sources" apt_accepts "$2"
    t "$1: meson >= $MESON_MIN from bookworm-backports" meson_from_backports "$2"
}

deb822_with_backports() {
    cat > "$1/etc/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $uri
Suites: bookworm bookworm-updates bookworm-backports
Components: main
Signed-By: $KEYRING
EOF
}

# (a) deb822 with Signed-By that already lists bookworm-backports.
d=$(new_case deb822)
deb822_with_backports "$d"
t "deb822 with backports: deps.sh --sources" deps_sources "$d"
t "deb822 with backports: no list of ours" absent "$(ours "$d")"
case_checks "deb822 with backports" "$d"

# (b) one-line sources without backports: deps.sh adds its own.
d=$(new_case oneline)
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$uri" "$uri" \
    > "$d/etc/sources.list"
t "one-line without backports: deps.sh --sources" deps_sources "$d"
t "one-line without backports: our list names $uri" \
    grep -qxF "deb $uri bookworm-backports main" "$(ours "$d")"
case_checks "one-line without backports" "$d"

# (c) as (a), plus a qemu-sriov-backports.list left by an earlier run.
d=$(new_case stale)
deb822_with_backports "$d"
echo "deb $uri bookworm-backports main" > "$(ours "$d")"
t "deb822 with backports and a stale list: deps.sh --sources" deps_sources "$d"
t "deb822 with backports and a stale list: the stale list is gone" \
    absent "$(ours "$d")"
case_checks "deb822 with backports and a stale list" "$d"

# (d) one-line sources with signed-by and backports, plus a stale list.
d=$(new_case oneline-backports)
printf 'deb [signed-by=%s] %s %s main\n' \
    "$KEYRING" "$uri" bookworm "$KEYRING" "$uri" bookworm-backports \
    > "$d/etc/sources.list"
echo "deb $uri bookworm-backports main" > "$(ours "$d")"
t "one-line with backports and a stale list: deps.sh --sources" deps_sources "$d"
t "one-line with backports and a stale list: the stale list is gone" \
    absent "$(ours "$d")"
case_checks "one-line with backports and a stale list" "$d"

echo "1..$n"
exit $failed
