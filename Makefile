# liblog — plain Makefile. Honours CFLAGS, LDFLAGS, CPPFLAGS, PREFIX, DESTDIR.
#   make              build lib/liblog.so (+ soname links), lib/liblog.a,
#                     pkgconfig/liblog.pc and the example CLI build/examples/rlogctl
#   make check        install missing deps, build, run every test
#   make check-asan   the same tests under AddressSanitizer + UBSan
#   make sim          the deterministic simulator: SEEDS=N SEED_START=S SCENARIO=random|all|name
#   make sim-asan     the simulator under AddressSanitizer + UBSan (build-asan/), same variables
#   make bench-store  segment store benchmark vs. the fdatasync floor
#   make install      PREFIX=/usr/local DESTDIR=  (library, header, .pc, rlogctl, man pages)
#   V=1               print whole compiler lines instead of one short line per file

VERSION_MAJOR := $(shell sed -n 's/^\#define RLOG_VERSION_MAJOR \([0-9]*\)/\1/p' include/liblog.h)
VERSION_MINOR := $(shell sed -n 's/^\#define RLOG_VERSION_MINOR \([0-9]*\)/\1/p' include/liblog.h)
VERSION_PATCH := $(shell sed -n 's/^\#define RLOG_VERSION_PATCH \([0-9]*\)/\1/p' include/liblog.h)
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
INSTALL ?= install

CC ?= cc
OPT ?= -O2 -g
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS ?=
LDFLAGS ?=
# The build's own flags come first so user CFLAGS can override -O, add -march...
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -fvisibility=hidden \
              -Iinclude -Ilib $(SAN_FLAGS) $(CPPFLAGS) $(CFLAGS)
LIBS := -luv -lraft -lxxhash -lssl -lcrypto -lpthread
TEST_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm -lpthread)

BUILD ?= build

# Quiet by default: one "CC file" line per step; V=1 shows the commands.
ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '  %-6s %s\n' $(1) $(2)
endif
LIB_SRC := $(shell find lib -name '*.c' | sort)
LIB_PIC_OBJ := $(LIB_SRC:%.c=$(BUILD)/pic/%.o)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/static/%.o)

# Before 1.0 every minor version may change the ABI (0.2 grew rlog_config and
# rlog_status, which callers allocate), so the soname carries the minor.
SONAME := liblog.so.$(if $(filter 0,$(VERSION_MAJOR)),0.$(VERSION_MINOR),$(VERSION_MAJOR))
SHARED := lib/liblog.so.$(VERSION)
STATIC := lib/liblog.a

TEST_LIB_SRC := $(wildcard test/lib/*.c)
TEST_SRC := $(sort $(wildcard test/unit/test_*.c))
TEST_BIN := $(TEST_SRC:test/unit/%.c=$(BUILD)/test/%)
# The unit tests that open logs, run a second time with every log of the
# process on one shared loop thread (test/lib/shared_host.c).
SHARED_HOST_TESTS := $(addprefix $(BUILD)/test/test_,backpressure cluster cursors failstop forward \
    metrics modes producers sm)
BENCH_STORE := $(BUILD)/bench/bench_store
# The simulator runs every node's disk through the tests' fault injection.
SIM_SRC := test/sim/sim.c test/sim/world.c test/sim/hostlogs.c test/lib/fault_fs.c
SIM_BIN := $(BUILD)/sim/sim
SIM_SEEDS ?= 3
SEEDS ?= 100
SEED_START ?= 1
SCENARIO ?= random

.PHONY: all deps check check-asan test install uninstall clean bench-store bench-footprint run examples sim sim-asan

EXAMPLES := $(BUILD)/examples/rlogctl $(BUILD)/examples/hello $(BUILD)/examples/kv \
            $(BUILD)/examples/events

# The library, and the example CLI that `make run` and the tests use.
all: $(SHARED) $(STATIC) lib/liblog.so pkgconfig/liblog.pc $(EXAMPLES)

deps:
	@./.ci/install-deps

$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -fPIC -MMD -MP -c $< -o $@

$(BUILD)/static/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(SHARED): $(LIB_PIC_OBJ)
	$(call say,LD,$@)
	$(Q)$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--no-undefined $(SAN_FLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

lib/$(SONAME): $(SHARED)
	$(Q)ln -sf $(notdir $(SHARED)) $@

lib/liblog.so: lib/$(SONAME)
	$(Q)ln -sf $(SONAME) $@

$(STATIC): $(LIB_OBJ)
	$(call say,AR,$@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

# The .pc names the PREFIX it is made for: `make install` writes its own
# (below) for the PREFIX it is given, whatever an earlier build used.
PC_SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g'
pkgconfig/liblog.pc: pkgconfig/liblog.pc.in Makefile include/liblog.h
	$(Q)$(PC_SUBST) $< > $@

# Tests link the static library: they reach internal (hidden) symbols.
$(BUILD)/test/%: test/unit/%.c $(TEST_LIB_SRC) $(wildcard test/lib/*.h) $(STATIC)
	@mkdir -p $(dir $@)
	$(call say,CCLD,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -Itest $(LDFLAGS) -o $@ $< $(TEST_LIB_SRC) $(STATIC) $(LIBS) $(TEST_LIBS)

$(BENCH_STORE): bench/bench_store.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC) $(LIBS) -lm

RAWSEND := $(BUILD)/itest/rawsend
# forge: well-formed, checksummed attack frames for test_attack_*.sh (it
# links the library's own wire codec and batch layout).
FORGE := $(BUILD)/itest/forge

$(BUILD)/examples/%: examples/%.c $(STATIC)
	@mkdir -p $(dir $@)
	$(call say,CCLD,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC) $(LIBS)

# rlogctl is one file per job in examples/rlogctl/. All but main.c (the entry
# point) go into an archive that test/nemesis/nemesis_node links as well.
RLOGCTL_SRC := $(filter-out examples/rlogctl/main.c,$(sort $(wildcard examples/rlogctl/*.c)))
RLOGCTL_A := $(BUILD)/examples/librlogctl.a

$(RLOGCTL_A): $(RLOGCTL_SRC:%.c=$(BUILD)/static/%.o)
	@mkdir -p $(dir $@)
	$(call say,AR,$@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/examples/rlogctl: $(BUILD)/static/examples/rlogctl/main.o $(RLOGCTL_A) $(STATIC)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(RLOGCTL_A) $(STATIC) $(LIBS)

# events serves rlogctl's control protocol (so `rlogctl cursor-get` reaches it).
$(BUILD)/examples/events: examples/events.c $(RLOGCTL_A) $(STATIC)
	@mkdir -p $(dir $@)
	$(call say,CCLD,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -Iexamples/rlogctl -MMD -MP $(LDFLAGS) -o $@ $< $(RLOGCTL_A) $(STATIC) $(LIBS)

$(RAWSEND): test/integration/rawsend.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $<

$(FORGE): test/integration/forge.c $(STATIC)
	@mkdir -p $(dir $@)
	$(call say,CCLD,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC) $(LIBS)

examples: $(EXAMPLES)

# Unit tests, the docs check, the layer check (no call circle between the
# files of any one directory of lib/: test/check-layers), then multi-process
# tests of the example CLI.
test: $(TEST_BIN) all $(EXAMPLES) $(RAWSEND) $(FORGE) $(BUILD)/nemesis/nemesis_node $(BUILD)/nemesis/proxy \
      $(BUILD)/fuzz/replay_wire $(BUILD)/fuzz/replay_recovery $(BUILD)/fuzz/replay_peer $(SIM_BIN)
	@./test/run-unit $(TEST_BIN)
	@echo "== the same, every log of a process on one shared loop thread"
	@LIBLOG_TEST_SHARED_HOST=1 ./test/run-unit $(SHARED_HOST_TESTS)
	@./test/check-docs
	@./test/check-layers -b $(BUILD)
	@./test/install/run
	@./test/fuzz/run-replay $(BUILD)/fuzz test/fuzz/corpus
	@./test/sim/run $(SIM_BIN) $(SIM_SEEDS)
	@RLOGCTL=$(abspath $(BUILD)/examples/rlogctl) RAWSEND=$(abspath $(RAWSEND)) FORGE=$(abspath $(FORGE)) \
	    ./test/integration/run
	@NEMESIS_NODE=$(abspath $(BUILD)/nemesis/nemesis_node) PROXY=$(abspath $(BUILD)/nemesis/proxy) \
	    ./test/nemesis/run.sh 20

# The deterministic simulator: every scenario over SIM_SEEDS seeds in
# `make check`; `make sim SEEDS=100000 SEED_START=S [SCENARIO=name]` for more.
$(SIM_BIN): $(SIM_SRC) test/sim/world.h test/sim/hostlogs.h test/lib/fault_fs.h $(STATIC)
	@mkdir -p $(dir $@)
	$(call say,CCLD,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -Itest $(LDFLAGS) -o $@ $(SIM_SRC) $(STATIC) $(LIBS)

sim: all
	@$(MAKE) --no-print-directory $(SIM_BIN)
	@$(SIM_BIN) --scenario $(SCENARIO) --seeds $(SEEDS) --seed-start $(SEED_START)

# A local 3-node cluster of the example CLI, driven step by step.
run: deps
	@$(MAKE) --no-print-directory all examples
	@RLOGCTL=$(abspath $(BUILD)/examples/rlogctl) ./examples/run-cluster.sh

check: deps
	@$(MAKE) --no-print-directory test

# Separate build tree so sanitized and plain objects never mix.
ASAN_BUILD := BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
    SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all" \
    STATIC=build-asan/liblog.a SHARED=build-asan/liblog.so.$(VERSION)
ASAN_RUN := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1

check-asan: deps
	@$(MAKE) --no-print-directory $(ASAN_BUILD) test-asan

# The simulator under ASan + UBSan, with `make sim`'s variables. A memory
# error aborts the whole run with its report: the failing run is the one after
# the last "seed S NAME: ..." line (seeds ascending, each through the
# scenarios in sim.c's order); replay it with build-asan/sim/sim.
sim-asan:
	@$(MAKE) --no-print-directory $(ASAN_BUILD) build-asan/sim/sim
	@$(ASAN_RUN) build-asan/sim/sim --scenario $(SCENARIO) --seeds $(SEEDS) --seed-start $(SEED_START)

# test_rss: 256 MiB and no RSS bound under ASan (its quarantine and shadow
# memory dominate RSS); see the test's header.
# allocator_may_return_null: kept from when libraft's raft_uv_tcp handshake
# malloc'ed the address length a peer announced (lib/net's hello is a fixed
# 32 bytes now).
test-asan: $(TEST_BIN) $(STATIC) $(EXAMPLES) $(RAWSEND) $(FORGE) $(SIM_BIN) \
           $(BUILD)/nemesis/nemesis_node $(BUILD)/nemesis/proxy
	@$(ASAN_RUN) ./test/run-unit $(TEST_BIN)
	@$(ASAN_RUN) LIBLOG_TEST_SHARED_HOST=1 ./test/run-unit $(SHARED_HOST_TESTS)
	@$(ASAN_RUN) ./test/sim/run $(SIM_BIN) $(SIM_SEEDS)
	@ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    RLOGCTL=$(abspath $(BUILD)/examples/rlogctl) RAWSEND=$(abspath $(RAWSEND)) FORGE=$(abspath $(FORGE)) \
	    NEMESIS_NODE=$(abspath $(BUILD)/nemesis/nemesis_node) PROXY=$(abspath $(BUILD)/nemesis/proxy) \
	    RSS_MIB=256 RSS_ASSERT=0 ./test/integration/run

bench-store: deps $(BENCH_STORE)
	@$(BENCH_STORE) $(BENCH_ARGS)

# Link pages are symlinks in the repository (so `man -l` works from any
# directory) and installed as `.so` pages, as man-db expects.
install: all
	$(INSTALL) -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) \
	    $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7
	$(INSTALL) -m 644 include/liblog.h $(DESTDIR)$(INCLUDEDIR)/
	$(INSTALL) -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf $(notdir $(SHARED)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/liblog.so
	$(INSTALL) -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	$(PC_SUBST) pkgconfig/liblog.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/liblog.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/liblog.pc
	$(INSTALL) -m 755 $(BUILD)/examples/rlogctl $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 644 man/man1/*.1 $(DESTDIR)$(MANDIR)/man1/
	$(INSTALL) -m 644 man/man7/*.7 $(DESTDIR)$(MANDIR)/man7/
	@for f in man/man3/*.3; do \
	    if [ -L "$$f" ]; then \
	        echo ".so man3/$$(basename "$$(readlink "$$f")")" > $(DESTDIR)$(MANDIR)/man3/$$(basename "$$f"); \
	        chmod 644 $(DESTDIR)$(MANDIR)/man3/$$(basename "$$f"); \
	    else $(INSTALL) -m 644 "$$f" $(DESTDIR)$(MANDIR)/man3/; fi; \
	done

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/liblog.h $(DESTDIR)$(LIBDIR)/liblog.* \
	    $(DESTDIR)$(PKGCONFIGDIR)/liblog.pc $(DESTDIR)$(BINDIR)/rlogctl
	cd man && for f in man1/*.1 man3/*.3 man7/*.7; do rm -f $(DESTDIR)$(MANDIR)/$$f; done

clean:
	rm -rf build build-asan lib/liblog.so* lib/liblog.a pkgconfig/liblog.pc

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

BENCH_APPEND := $(BUILD)/bench/bench_append
$(BENCH_APPEND): bench/bench_append.c bench/cluster3.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC) $(LIBS) -lm

.PHONY: bench-append
bench-append: deps $(BENCH_APPEND)
	@$(BENCH_APPEND) $(BENCH_ARGS)

# make bench: liblog vs. the floor vs. raw libraft (raft_uv), 3 processes per
# cluster; prints result lines, a summary, and writes bench/results/latest.json.
# make bench-quick: the floor, W1, W2, the batched producer, W4 at W1's and at half W2's rate. BENCH_ARGS=--long: W6 at 10 GiB.
BENCH_NODE := $(BUILD)/bench/bench_node
$(BENCH_NODE): bench/bench_node.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC) $(LIBS) -lm

.PHONY: bench bench-quick bench-producers bench-idle
# make bench-idle: what an idle log costs per replica (memory, idle CPU,
# threads, descriptors): each replica on its own thread, on three hosts'
# shared threads, and on three hosts with an address each (one listener and
# one connection per peer host); IDLE_LOGS logs (100).
IDLE_LOGS ?= 100
BENCH_IDLE := $(BUILD)/bench/bench_idle
$(BENCH_IDLE): bench/bench_idle.c bench/hostbench.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC) $(LIBS)

# make bench-hosts: issue 16's figures over three hosts with an address
# (in one process): W1 on one log alone, with HOSTS_IDLE others idle and
# with 15 others producing, and batched producers on 1, 4 and 16 logs with
# their leaders spread.
HOSTS_IDLE ?= 999
BENCH_HOSTS := $(BUILD)/bench/bench_hosts
$(BENCH_HOSTS): bench/bench_hosts.c bench/hostbench.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC) $(LIBS)

.PHONY: bench-hosts
bench-hosts: deps $(BENCH_HOSTS)
	@$(BENCH_HOSTS) -i $(HOSTS_IDLE) $(BENCH_ARGS)

bench-idle: deps $(BENCH_IDLE)
	@$(BENCH_IDLE) -m threads -n $(IDLE_LOGS) $(BENCH_ARGS)
	@$(BENCH_IDLE) -m hosts -n $(IDLE_LOGS) $(BENCH_ARGS)
	@$(BENCH_IDLE) -m shared -n $(IDLE_LOGS) $(BENCH_ARGS)

bench: deps $(BENCH_NODE) $(BENCH_APPEND)
	@$(BENCH_NODE) run $(BENCH_ARGS)
	@$(BENCH_APPEND) -P -s 3 -r 5

# W2 with idempotent producers against plain W2, alternating rounds in one
# in-process cluster; prints the ratio of the medians (goal >= 0.9).
bench-footprint: all examples
	@RLOGCTL=$(abspath $(BUILD)/examples/rlogctl) ./bench/footprint.sh $(FOOTPRINT_MIB)

bench-producers: deps $(BENCH_APPEND)
	@$(BENCH_APPEND) -P $(BENCH_ARGS)

bench-quick: deps $(BENCH_NODE)
	@$(BENCH_NODE) run --quick $(BENCH_ARGS)

# ---- Fuzzing (test/fuzz/) ---------------------------------------------------
# make fuzz-replay   replays the seed corpus through every fuzz target with the
#                    normal compiler (no clang needed); part of the tests.
# make fuzz          libFuzzer + ASan + UBSan (clang), each target for
#                    FUZZ_SECONDS (default 60) over a copy of the corpus;
#                    FUZZ_TARGETS="peer" runs only those.
# make fuzz-corpus   regenerates test/fuzz/corpus/ with gen_corpus.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= wire recovery peer
FUZZ_CC ?= clang
FUZZ_BUILD := build-fuzz
FUZZ_DIR_SRC := test/fuzz/fuzz_store_dir.c
FUZZ_CFLAGS := -Itest/fuzz

$(BUILD)/fuzz/replay_wire: test/fuzz/replay.c test/fuzz/fuzz_wire.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(FUZZ_CFLAGS) $(LDFLAGS) -o $@ test/fuzz/replay.c test/fuzz/fuzz_wire.c $(STATIC) $(LIBS)

$(BUILD)/fuzz/replay_recovery: test/fuzz/replay.c test/fuzz/fuzz_recovery.c $(FUZZ_DIR_SRC) test/fuzz/fuzz_store_dir.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(FUZZ_CFLAGS) $(LDFLAGS) -o $@ test/fuzz/replay.c test/fuzz/fuzz_recovery.c $(FUZZ_DIR_SRC) $(STATIC) $(LIBS)

$(BUILD)/fuzz/replay_peer: test/fuzz/replay.c test/fuzz/fuzz_peer.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(FUZZ_CFLAGS) $(LDFLAGS) -o $@ test/fuzz/replay.c test/fuzz/fuzz_peer.c $(STATIC) $(LIBS)

$(BUILD)/fuzz/gen_corpus: test/fuzz/gen_corpus.c $(FUZZ_DIR_SRC) test/fuzz/fuzz_store_dir.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(FUZZ_CFLAGS) $(LDFLAGS) -o $@ test/fuzz/gen_corpus.c $(FUZZ_DIR_SRC) $(STATIC) $(LIBS)

# libFuzzer binaries: built only inside the $(FUZZ_BUILD) tree (see `fuzz`).
$(BUILD)/fuzz/fuzz_wire: test/fuzz/fuzz_wire.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $< $(STATIC) $(LIBS)

$(BUILD)/fuzz/fuzz_recovery: test/fuzz/fuzz_recovery.c $(FUZZ_DIR_SRC) test/fuzz/fuzz_store_dir.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $< $(FUZZ_DIR_SRC) $(STATIC) $(LIBS)

$(BUILD)/fuzz/fuzz_peer: test/fuzz/fuzz_peer.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $< $(STATIC) $(LIBS)

.PHONY: fuzz fuzz-replay fuzz-build fuzz-corpus
fuzz-replay: $(BUILD)/fuzz/replay_wire $(BUILD)/fuzz/replay_recovery $(BUILD)/fuzz/replay_peer
	@./test/fuzz/run-replay $(BUILD)/fuzz test/fuzz/corpus

fuzz-corpus: $(BUILD)/fuzz/gen_corpus
	$(BUILD)/fuzz/gen_corpus test/fuzz/corpus test/fuzz/corpus

# Inputs that fail because of known library bugs (test/fuzz/README.md): this
# fails until they are fixed; then move them into test/fuzz/corpus/.
fuzz-build:
	@RLOG_FUZZ_DEPS=1 ./.ci/install-deps
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) \
	    OPT="-O1 -g -fno-omit-frame-pointer" \
	    SAN_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" \
	    STATIC=$(FUZZ_BUILD)/liblog.a \
	    $(FUZZ_BUILD)/fuzz/fuzz_wire $(FUZZ_BUILD)/fuzz/fuzz_recovery $(FUZZ_BUILD)/fuzz/fuzz_peer

fuzz: fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TARGETS="$(FUZZ_TARGETS)" ./test/fuzz/run-fuzz $(FUZZ_BUILD)/fuzz test/fuzz/corpus

# make nemesis: the real-process nemesis test (test/nemesis/run.sh): three
# nodes behind loopback proxies under client load while nodes are killed,
# paused and cut off; then the checker. DURATION seconds (default 600);
# SEED replays a run's random choices (as far as timing allows).
NEMESIS_BIN := $(BUILD)/nemesis/nemesis_node $(BUILD)/nemesis/proxy
$(BUILD)/nemesis/nemesis_node: test/nemesis/nemesis_node.c $(RLOGCTL_A) $(STATIC)
	@mkdir -p $(dir $@)
	$(call say,CCLD,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -Iexamples/rlogctl -MMD -MP $(LDFLAGS) -o $@ $< $(RLOGCTL_A) $(STATIC) $(LIBS)

$(BUILD)/nemesis/proxy: test/nemesis/proxy.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $<

.PHONY: nemesis
nemesis: deps
	@$(MAKE) --no-print-directory $(NEMESIS_BIN)
	@NEMESIS_NODE=$(abspath $(BUILD)/nemesis/nemesis_node) PROXY=$(abspath $(BUILD)/nemesis/proxy) \
	    ./test/nemesis/run.sh $(if $(DURATION),$(DURATION),600) $(SEED)

# make bench-repair: the time to repair a damaged 64 MiB segment (the
# store's write-back of a good copy); BENCH_ARGS="-d DIR -n ROUNDS".
BENCH_REPAIR := $(BUILD)/bench/bench_repair
$(BENCH_REPAIR): bench/bench_repair.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC) $(LIBS)

# make bench-sm: a follower's state-machine apply rate against rlog_iter's
# over the same records (issue 13); BENCH_ARGS="-n RECORDS -z SIZE -d DIR".
BENCH_SM := $(BUILD)/bench/bench_sm
$(BENCH_SM): bench/bench_sm.c bench/cluster3.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC) $(LIBS)

.PHONY: bench-sm
bench-sm: deps $(BENCH_SM)
	@$(BENCH_SM) $(BENCH_ARGS)

# make bench-install: a wiped follower's way back by snapshot install, its
# transfer rate against the local snapshot write's (issue 13);
# BENCH_ARGS="-s STATE_MIB -n RECORDS -d DIR".
BENCH_INSTALL := $(BUILD)/bench/bench_install
$(BENCH_INSTALL): bench/bench_install.c bench/cluster3.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC) $(LIBS)

.PHONY: bench-install
bench-install: deps $(BENCH_INSTALL)
	@$(BENCH_INSTALL) $(BENCH_ARGS)

.PHONY: bench-repair
bench-repair: deps $(BENCH_REPAIR)
	@$(BENCH_REPAIR) $(BENCH_ARGS)
