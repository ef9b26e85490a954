# SPDX-License-Identifier: MIT
# gdroot: one Makefile for every C program, test, fuzz target and the demo.
# Quiet unless V=1. `make WERROR=1` (CI) turns warnings into errors.

VERSION := 0.1.0
CC ?= gcc
O ?= build
V ?= 0
WERROR ?= 0

ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-6s %s\n' $(1) $(2)
endif

PKGS := libcurl jansson libxml-2.0 openssl fuse3 liburing
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Werror=missing-prototypes -Werror=shadow \
	-Werror=implicit-function-declaration -Wmissing-prototypes -Wshadow \
	-Wformat=2 -Wno-format-nonliteral -Wstrict-prototypes
ifeq ($(WERROR),1)
WARN += -Werror
endif
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE -DGDROOT_VERSION='"$(VERSION)"' \
	-fno-strict-aliasing -pthread $(WARN) $(PKG_CFLAGS) $(CFLAGS) $(EXTRA_CFLAGS)
LDLIBS := $(PKG_LIBS) -lpthread

# The library every program links: utilities, the store client, and the
# image format (squash/*.c except the gdroot command's own files).
CLI_SRC := squash/gdroot.c squash/cli.c $(wildcard squash/cmd-*.c)
FETCHER_MAIN := fetcher/gdroot-fetcher.c
LIB_SRC := $(filter-out $(FETCHER_MAIN),$(wildcard fetcher/*.c)) $(wildcard fetcher/util/*.c) \
	$(wildcard fetcher/store/*.c) $(filter-out $(CLI_SRC),$(wildcard squash/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(O)/%.o)
LIB := $(O)/libgdroot.a

GDROOT_SRC := $(CLI_SRC)
GDROOT_OBJ := $(GDROOT_SRC:%.c=$(O)/%.o)

UNIT_SRC := $(wildcard tests/unit/test-*.c)
UNIT_BIN := $(UNIT_SRC:%.c=$(O)/%)

FUZZ_SRC := $(wildcard tests/fuzz/fuzz-*.c)
FUZZ_BIN := $(FUZZ_SRC:%.c=$(O)/%)

PROGS := $(O)/gdroot $(O)/gdroot-fetcher
# Test tools (below): defined here, as all's prerequisites expand at once.
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BIN := $(TOOL_SRC:%.c=$(O)/%)

.SECONDARY:
.PHONY: all clean deps check check-vm check-all check-unit fuzz fuzz-build asan valgrind demo bench-store bench help
all: $(PROGS) $(UNIT_BIN) $(TOOL_BIN)

help:
	@echo "make            build every program ($(O)/gdroot) and unit test"
	@echo "make deps       install the Debian and npm packages gdroot needs"
	@echo "make check      run every test that needs no VM"
	@echo "make check-vm   boot the appliance in QEMU: busybox and Debian roots, failures"
	@echo "make check-all  both, with one summary (what CI runs)"
	@echo "make demo       run the demo on the local Drive emulator"
	@echo "make fuzz       build and run every libFuzzer target (FUZZ_TIME=s each)"
	@echo "make asan       run the unit and integration tests under ASan/UBSan"
	@echo "make valgrind   run the unit tests under valgrind"
	@echo "make bench-store  store client throughput against the emulator and curl"
	@echo "make bench        boot benchmark over an emulated WAN against the alternatives (root, long)"

$(O)/%.o: %.c
	$(call msg,CC,$<)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(LIB): $(LIB_OBJ)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

# Linked beside and renamed, so a test running during a rebuild never
# sees a half-written binary.
$(O)/gdroot: $(GDROOT_OBJ) $(LIB)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -o $@.tmp $^ $(LDLIBS) && mv -f $@.tmp $@

# Test tools (tracers, generators): one program per file, may use FUSE.
$(O)/tests/tools/%: tests/tools/%.c $(LIB)
	$(call msg,CC,$<)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) $(shell pkg-config --cflags fuse3) -MMD -MP -o $@ $< $(LIB) $(LDLIBS) $(shell pkg-config --libs fuse3)

$(O)/gdroot-fetcher: $(O)/$(FETCHER_MAIN:.c=.o) $(O)/squash/cli.o $(LIB)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -o $@.tmp $^ $(LDLIBS) && mv -f $@.tmp $@

$(O)/tests/unit/%: tests/unit/%.c $(LIB)
	$(call msg,CC,$<)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -o $@ $< $(LIB) $(LDLIBS)

# libFuzzer targets: clang only, with ASan and UBSan.
FUZZ_CC ?= clang
FUZZ_TIME ?= 20
$(O)/fuzz/lib/%.o: %.c
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(ALL_CFLAGS) -O1 -fsanitize=fuzzer-no-link,address,undefined -MMD -MP -c -o $@ $<
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(O)/fuzz/lib/%.o)
$(O)/tests/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_OBJ)
	$(call msg,FUZZ,$<)
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(ALL_CFLAGS) -O1 -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)
fuzz-build: $(FUZZ_BIN)
fuzz: fuzz-build
	$(Q)tests/fuzz/run $(O)/tests/fuzz $(FUZZ_TIME)

deps:
	$(Q)tests/deps.sh

check: deps all
	$(Q)O=$(O) tests/run

# The boot in QEMU (TCG): several minutes.
check-vm: deps all
	$(Q)O=$(O) GDROOT_TEST_ONLY=vm tests/run

# Everything, with one summary: what CI runs.
check-all: deps all
	$(Q)O=$(O) GDROOT_TEST_ONLY="unit scripts pytest vm" tests/run

asan:
	$(Q)$(MAKE) --no-print-directory O=$(O)/asan CC=clang \
		EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer" all
	$(Q)O=$(O)/asan GDROOT_TEST_ONLY="unit scripts" ASAN_OPTIONS=detect_leaks=1 tests/run

valgrind: all
	$(Q)O=$(O) GDROOT_TEST_ONLY=unit GDROOT_TEST_WRAP="valgrind -q --error-exitcode=99 --leak-check=full" tests/run

demo: deps all
	$(Q)O=$(O) appliance/demo.sh

bench-store: all
	$(Q)O=$(O) tests/bench/store-throughput.sh

# The boot benchmark over an emulated WAN (root, QEMU, an hour or more):
# writes docs/benchmarks-boot.md and its plot. BENCH_ARGS go to boot.sh.
bench: deps all
	$(Q)O=$(O) tests/bench/boot.sh $(BENCH_ARGS)

# The appliance: Debian's kernel + a busybox initramfs with the fetcher
# ($(O)/appliance/vmlinuz, initrd.img). APPLIANCE_ARGS go to build.sh.
.PHONY: appliance appliance-clean
appliance: all
	$(Q)O=$(O) appliance/build.sh $(APPLIANCE_ARGS)

appliance-clean:
	rm -rf $(O)/appliance $(O)/appliance-cache

clean:
	rm -rf $(O)

-include $(shell find $(O) -name '*.d' -type f 2>/dev/null)
