# Shared settings of the scripts; sourced, not run.
# shellcheck shell=bash
top=${top:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BASE_VERSION=1:10.0.13+ds-0+deb13u1
BASE_DSC=qemu_10.0.13+ds-0+deb13u1.dsc
BASE_FILES="qemu_10.0.13+ds.orig.tar.xz qemu_10.0.13+ds-0+deb13u1.debian.tar.xz $BASE_DSC"
SHARED_DOWNLOADS=${SHARED_DOWNLOADS:-$top/../shared/downloads}
CACHE=${CACHE:-$top/downloads}
BUILD=${BUILD:-$top/build}
PATCHES=${PATCHES:-$top/patches}
# QEMU_SRC: another work tree of the series (bench/steps.py)
SRC=${QEMU_SRC:-$BUILD/qemu}
# The QEMU build directory; make check-asan and make fuzz use their own.
OBJ=${OBJ:-$SRC/build}
GUEST=$BUILD/guest
BASELINE_TAG=baseline
