# qemu-sriov: composable SR-IOV for QEMU's virtio devices.
# The product is the patch series in patches/, applied to the pinned base.
# See README.md.  Main entry points:
#   make demo     set everything up from a fresh machine and boot the demo
#   make check    the whole test suite (ends with "N passed, N failed")
#   make bench    benchmark figures for 0..255 VFs (BENCH_ARGS=--help)
#   make check-asan  qtests and guest tests against an ASan+UBSan build
#                 (build/qemu/build-asan; CHECK_ARGS="-k sriov" to narrow)
#   make fuzz     libFuzzer campaign (generic-fuzz) on the SR-IOV config
#                 paths; FUZZ_TIME=600 seconds, FUZZ_VFS=7; non-zero on findings

SHELL := /bin/bash
TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
BUILD ?= $(TOP)/build
export BUILD

# qtest binaries that make check runs (ours and the regression subset).
QTESTS := $(shell cat $(TOP)/tests/qtests.list 2>/dev/null | sed -n 's/^\([^#][^ ]*\).*/tests\/qtest\/\1/p' | sort -u)

.PHONY: all deps worktree build qtests guest check check-asan fuzz demo bench \
        patches patches-check checkpatch clean distclean help

all: build

help:
	@sed -n 's/^#   //p' $(MAKEFILE_LIST)

deps:
	@$(TOP)/scripts/deps.sh

worktree: deps
	@$(TOP)/scripts/worktree.sh

build: worktree
	@$(TOP)/scripts/build.sh

qtests: worktree
	@$(TOP)/scripts/build.sh $(QTESTS)

guest: deps
	@$(TOP)/scripts/guest.sh

check: qtests guest
	@$(TOP)/scripts/test-deps.sh
	@$(TOP)/tests/check.py

# The same tests against an ASan+UBSan build in build/qemu/build-asan.
check-asan: worktree guest
	@$(TOP)/scripts/test-deps.sh
	@$(TOP)/scripts/check-asan.sh

# Coverage-guided fuzzing of the SR-IOV config paths (build/qemu/build-fuzz).
fuzz: worktree
	@$(TOP)/scripts/fuzz.sh

demo: build guest
	@$(TOP)/scripts/demo.py

bench: build
	@$(TOP)/bench/bench.py $(BENCH_ARGS)

patches:
	@$(TOP)/scripts/export-patches.sh

patches-check:
	@$(TOP)/scripts/patches-check.sh

checkpatch: worktree
	@$(TOP)/tests/check.py --only checkpatch

clean:
	rm -rf $(BUILD)/qemu/build $(BUILD)/qemu/build-asan $(BUILD)/qemu/build-fuzz \
	       $(BUILD)/test-logs $(BUILD)/test-logs-asan

distclean:
	@$(TOP)/scripts/patches-check.sh >/dev/null || { echo "distclean: the work tree holds unexported work; not removing it" >&2; exit 1; }
	rm -rf $(BUILD) $(TOP)/downloads
