# Shared settings of the scripts; sourced, not run.
# shellcheck shell=bash
#
# Two bases, each with its own series in patches/BASE/ and its own work tree
# build/qemu-BASE (a git repository, the series as commits on the tag
# "baseline"):
#   10.0  Debian 13's qemu 1:10.0.13+ds-0+deb13u1
#   10.2  Debian sid's qemu 1:10.2.2+ds-1 (upstream's composable SR-IOV)
# BASE (default 10.0) selects one.  build/upstream-10.2 is 10.2.2 without a
# series, built for the migration tests and the benchmarks.
top=${top:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BASES="10.0 10.2"
BASE=${BASE:-10.0}
case $BASE in
10.0) BASE_VERSION=1:10.0.13+ds-0+deb13u1 BASE_SUITE=trixie ;;
10.2) BASE_VERSION=1:10.2.2+ds-1 BASE_SUITE=sid ;;
*)    echo "unknown BASE=$BASE (one of: $BASES)" >&2; exit 2 ;;
esac
_v=${BASE_VERSION#*:}
BASE_DSC=qemu_$_v.dsc
BASE_FILES="qemu_${_v%-*}.orig.tar.xz qemu_$_v.debian.tar.xz $BASE_DSC"
unset _v
SHARED_DOWNLOADS=${SHARED_DOWNLOADS:-$top/../shared/downloads}
CACHE=${CACHE:-$top/downloads}
BUILD=${BUILD:-$top/build}
PATCHES=${PATCHES:-$top/patches/$BASE}
# QEMU_SRC: another work tree of the series (bench/steps.py, the unpatched
# upstream tree of scripts/upstream.sh)
SRC=${QEMU_SRC:-$BUILD/qemu-$BASE}
# The QEMU build directory; make check-asan and make fuzz use their own.
OBJ=${OBJ:-$SRC/build}
UPSTREAM_SRC=$BUILD/upstream-10.2
GUEST=$BUILD/guest
BASELINE_TAG=baseline
