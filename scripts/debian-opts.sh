#!/usr/bin/env bash
# The configure options and build dependencies of Debian's qemu-system
# build ("b/qemu" in debian/rules), read from a base's own debian/ so that
# they follow the base:
#
#   debian-opts.sh configure SRC   configure options, one per line
#   debian-opts.sh packages SRC    the Debian packages they need, one per line
#   debian-opts.sh table SRC       OPTION<tab>PACKAGE for every pair (debugging)
#
# SRC is a QEMU work tree with debian/ (build/qemu-BASE).  The options are
# debian/rules' fixed ones for b/qemu (--enable-tools, --enable-modules,
# --enable-module-upgrades, ...) plus what debian/extract-config-opts takes
# from the comments of debian/control for this architecture (dpkg's,
# DEB_HOST_ARCH overrides it), exactly as Debian's build runs it.  In
# debian/control each "# --enable-FOO<tab>ARCHES" comment is followed by the
# build dependencies of that feature; an --enable-FOO whose packages are not
# installed here (where this Debian lacks them: libblkio-dev on Debian 12)
# becomes --disable-FOO, with a note on stderr, so that configure does not
# fail on a feature that cannot be built.  The packages of Debian's Xen
# build (libxen-dev), which we do not make, are left out.
#
# What this does not take from debian/rules: the install layout (--prefix,
# --libdir, --sysconfdir, ... come from scripts/build.sh: PREFIX),
# --disable-relocatable (a tree installed with DESTDIR must find its own
# modules), the package version string, Debian's CFLAGS, and --disable-docs
# (we build the man pages).
set -euo pipefail
mode=${1:?usage: debian-opts.sh configure|packages|table SRC}
src=${2:?usage: debian-opts.sh configure|packages|table SRC}
control=$src/debian/control
[ -f "$control" ] && [ -f "$src/debian/extract-config-opts" ] || {
    echo "debian-opts: $src has no debian/control or debian/extract-config-opts" >&2
    exit 1
}
arch=${DEB_HOST_ARCH:-$(dpkg --print-architecture)}
os=linux
# Not ours: the packages of Debian's Xen build (debian/rules b/xen)
SKIP_PKGS=" libxen-dev "

# OPTION<tab>PACKAGE for the Build-Depends-Arch of debian/control that apply
# to $arch; OPTION is "-" for the packages before the first option comment
# ("always needed").
table() {
    awk -v arch="$arch" -v os="$os" '
        function archok(r,   n, a, i, neg, pos, hit) {
            if (r == "") return 1
            n = split(r, a, " "); pos = 0; hit = 0
            for (i = 1; i <= n; i++) {
                neg = sub(/^!/, "", a[i])
                if (!neg) pos = 1
                if (a[i] == arch || a[i] == os "-any" || a[i] == "any" ||
                    a[i] == os "-" arch) {
                    if (neg) return 0
                    hit = 1
                }
            }
            return pos ? hit : 1
        }
        # the packages of one option, joined over their lines: a build
        # profile (<...>) may be on the line after its package
        function flush(   n, dep, i, d, r) {
            n = split(buf, dep, ",")
            for (i = 1; i <= n; i++) {
                d = dep[i]
                if (d ~ /<[^>]*>/) continue          # build profiles: not ours
                r = ""
                if (match(d, /\[[^]]*\]/)) r = substr(d, RSTART + 1, RLENGTH - 2)
                sub(/\|.*/, "", d); sub(/\(.*/, "", d); sub(/\[.*/, "", d)
                gsub(/[ \t]/, "", d); sub(/:.*/, "", d)
                if (d != "" && archok(r)) print opt "\t" d
            }
            buf = ""
        }
        /^Build-Depends-Arch:/ { on = 1; opt = "-"; next }
        on && /^[^ #]/ { flush(); on = 0 }
        !on { next }
        /^# ?--/ {
            flush()
            l = $0; sub(/^# ?/, "", l); split(l, f, "\t"); opt = f[1]; next
        }
        /^#/ { next }
        { buf = buf " " $0 }
        END { if (on) flush() }
        ' "$control" | while IFS=$'\t' read -r o p; do
            case $SKIP_PKGS in *" $p "*) continue ;; esac
            printf '%s\t%s\n' "$o" "$p"
        done
}

# Installed packages and what they provide (gnutls-dev is libgnutls28-dev's)
have=" $(dpkg-query -W -f='${Status} ${Package} ${Provides}\n' 2>/dev/null |
    awk '/^install ok installed/ { for (i = 4; i <= NF; i++) {
             p = $i; sub(/,$/, "", p); if (p !~ /^[(=]/ && p !~ /\)$/) print p } }' |
    tr '\n' ' ') "
installed() {
    case $have in *" $1 "*) return 0 ;; esac
    return 1
}

case $mode in
table) table ;;
packages) table | cut -f2 | sort -u ;;
configure)
    # debian/rules, b/qemu: the options that do not depend on packages
    echo --enable-system
    echo --disable-user
    echo --disable-linux-user
    echo --enable-tools
    echo --disable-xen
    echo --enable-modules
    echo --enable-module-upgrades
    echo --disable-containers
    echo --disable-xkbcommon
    # what debian/control says for this architecture, less what cannot be
    # built here
    tab=$(table)
    sh "$src/debian/extract-config-opts" "$os-$arch" "$control" |
    while read -r line; do
        missing=
        while IFS=$'\t' read -r o p; do
            [ "$o" = "$line" ] || continue
            installed "$p" || missing="$missing $p"
        done <<< "$tab"
        if [ -z "$missing" ]; then
            # shellcheck disable=SC2086
            printf '%s\n' $line
        else
            for o in $line; do
                case $o in
                --enable-*) d=--disable-${o#--enable-} ;;
                *) echo "debian-opts: $o needs$missing, which is not installed;" \
                        "left out" >&2; continue ;;
                esac
                echo "debian-opts: $o needs$missing, which is not installed" \
                     "(not in this Debian?): $d" >&2
                echo "$d"
            done
        fi
    done
    ;;
*) echo "debian-opts: unknown mode $mode" >&2; exit 2 ;;
esac
