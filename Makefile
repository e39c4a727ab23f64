# qemu-sriov: composable SR-IOV for QEMU's virtio devices.
# The product is the patch series in patches/BASE/, one for each base:
#   10.0  Debian 13's QEMU 10.0.13;  10.2  Debian sid's QEMU 10.2.2
# See README.md.  Main entry points:
#   make demo     set everything up from a fresh machine and boot the demo
#                 (on DEMO_BASE, default 10.0)
#   make check    the whole test suite on both bases ("N passed, N failed")
#   make build    QEMU of each base as Debian's qemu-system-x86 is built
#                 (build/qemu-BASE/build; PREFIX, default /usr/local)
#   make install  install QEMU of BASE (default 10.0) under PREFIX
#                 (default /usr/local), below DESTDIR if set
#   make uninstall   remove what make install put there
#   make bench    benchmark figures for 0..255 VFs (BENCH_ARGS=--help)
#   make check-asan  qtests and guest tests against ASan+UBSan builds
#                 (build/qemu-BASE/build-asan; CHECK_ARGS="-k sriov")
#   make fuzz     libFuzzer campaign (generic-fuzz) on the SR-IOV config
#                 paths of BASE (default 10.0); FUZZ_TIME=600 seconds,
#                 FUZZ_VFS=7; non-zero on findings
# BASES="10.2" (or 10.0) limits build, check, check-asan, patches and
# patches-check to one base.

SHELL := /bin/bash
TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
BUILD ?= $(TOP)/build
export BUILD
BASES ?= 10.0 10.2
DEMO_BASE ?= 10.0
BASE ?= 10.0
PREFIX ?= /usr/local
export PREFIX

# qtest binaries that make check runs for base $(1): tests/qtests.list
qtests = $(shell sed -n -e 's/^$(subst .,\.,$(1)):[[:space:]]*//' \
	-e '/^[0-9.]*:/d' -e 's/^\([^#][^ ]*\).*/tests\/qtest\/\1/p' \
	$(TOP)/tests/qtests.list | sort -u)

.PHONY: all deps worktree build qtests upstream guest check check-asan fuzz \
        demo bench patches patches-check checkpatch clean distclean help \
        install uninstall

all: build

help:
	@sed -n 's/^#   //p' $(MAKEFILE_LIST)

deps:
	@$(TOP)/scripts/deps.sh

worktree: deps
	@set -e; for b in $(BASES); do BASE=$$b $(TOP)/scripts/worktree.sh; done

build: worktree
	@set -e; for b in $(BASES); do BASE=$$b $(TOP)/scripts/build.sh; done

qtests: worktree
	@set -e; $(foreach b,$(BASES),BASE=$(b) $(TOP)/scripts/build.sh $(call qtests,$(b));)

# The full build of BASE (configured for PREFIX), installed with a manifest
# (scripts/install.sh); uninstall removes what the manifest lists.
install: deps
	@BASE=$(BASE) $(TOP)/scripts/worktree.sh
	@BASE=$(BASE) $(TOP)/scripts/build.sh
	@BASE=$(BASE) DESTDIR=$(DESTDIR) $(TOP)/scripts/install.sh install

uninstall:
	@BASE=$(BASE) DESTDIR=$(DESTDIR) $(TOP)/scripts/install.sh uninstall

# QEMU 10.2.2 without a series (build/upstream-10.2): the migration tests
# and the benchmarks compare with it.
upstream: deps
	@$(TOP)/scripts/upstream.sh

guest: deps
	@$(TOP)/scripts/guest.sh

check: qtests upstream guest
	@$(TOP)/scripts/test-deps.sh
	@$(TOP)/tests/check.py $(foreach b,$(BASES),--base $(b))

# The same tests against ASan+UBSan builds in build/qemu-BASE/build-asan.
check-asan: worktree guest
	@$(TOP)/scripts/test-deps.sh
	@set -e; rc=0; for b in $(BASES); do \
	    BASE=$$b $(TOP)/scripts/check-asan.sh || rc=1; done; exit $$rc

# Coverage-guided fuzzing of the SR-IOV config paths (build/qemu-BASE/build-fuzz).
fuzz: worktree
	@BASE=$(BASE) $(TOP)/scripts/fuzz.sh

demo: deps guest
	@BASE=$(DEMO_BASE) $(TOP)/scripts/worktree.sh
	@BASE=$(DEMO_BASE) $(TOP)/scripts/build.sh
	@BASE=$(DEMO_BASE) $(TOP)/scripts/demo.py

bench: build upstream
	@$(TOP)/bench/bench.py $(BENCH_ARGS)

patches:
	@set -e; for b in $(BASES); do BASE=$$b $(TOP)/scripts/export-patches.sh; done

patches-check:
	@rc=0; for b in $(BASES); do BASE=$$b $(TOP)/scripts/patches-check.sh || rc=1; done; exit $$rc

checkpatch: worktree
	@$(TOP)/tests/check.py --only checkpatch $(foreach b,$(BASES),--base $(b))

clean:
	rm -rf $(BUILD)/qemu-*/build $(BUILD)/qemu-*/build-asan \
	       $(BUILD)/qemu-*/build-fuzz $(BUILD)/upstream-10.2/build \
	       $(BUILD)/test-logs $(BUILD)/test-logs-asan $(BUILD)/test-install

distclean:
	@$(MAKE) -s patches-check >/dev/null || { echo "distclean: a work tree holds unexported work; not removing it" >&2; exit 1; }
	rm -rf $(BUILD) $(TOP)/downloads
