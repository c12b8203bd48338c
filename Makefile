# Batchy and Waitsy. `make` builds both, `make check` runs every test,
# `make san` builds with ASan+UBSan into build-san/ and runs every test there,
# `make bench` measures speed (scripts/bench.sh), `make lint` runs cppcheck
# and clang-tidy.
CC      ?= cc
SAN     ?= 0
ifeq ($(SAN),1)
BUILD   ?= build-san
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else
BUILD   ?= build
SANFLAGS =
endif

PKGS      = hiredis libmicrohttpd yaml-0.1 libcjson liburiparser libcurl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# Each program links only what it uses: libcurl (Waitsy's) and the thirty
# libraries it brings would cost batchy 5 MB of resident memory.
BATCHY_LIBS := $(shell pkg-config --libs hiredis libmicrohttpd yaml-0.1 libcjson liburiparser \
                 2>/dev/null) -lpthread -lm
WAITSY_LIBS := $(shell pkg-config --libs libcurl libcjson yaml-0.1 2>/dev/null) -lpthread -lm
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)
# batchy's allocator. It allocates and frees small objects on many threads
# (cJSON documents, hiredis replies), and mimalloc does that with about a
# sixth less CPU per open+close than glibc's malloc (scripts/bench.sh, A/B:
# 43 against 51 us). jemalloc saved a little more, but it reads the clock
# while it starts, which deadlocks under libfaketime (its clock_gettime
# starts itself with dlsym, which allocates); tcmalloc costs 3 MB more
# resident memory (libstdc++). Debian ships mimalloc without a pkg-config
# file, hence the probe for its header. Not in the sanitizer build, where
# ASan brings its own; valgrind is told to replace it (harness.py).
ifneq ($(SAN),1)
ALLOC_LIBS := $(shell printf '\043include <mimalloc.h>\n' | $(CC) -E -x c - >/dev/null 2>&1 \
                && echo -lmimalloc)
endif

WARN    = -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes
CFLAGS  ?= -O2 -g

# Hardening, on by default; scripts/check-hardening.sh checks the binaries.
# Fortified libc calls, stack canaries, stack clash probes and Intel CET
# (where the compiler supports them for the target), a position-independent
# executable, full RELRO (relocations resolved at start, then read-only) and
# a non-executable stack. `make HARDEN=0` builds without; HARDEN_CFLAGS and
# HARDEN_LDFLAGS replace either set. FORTIFY needs optimisation, so it is
# left out when CFLAGS has no -O level, and it is left out of the sanitizer
# build, where ASan intercepts the same calls.
HARDEN  ?= 1
ifeq ($(HARDEN),1)
cc_option = $(shell $(CC) -Werror $(1) -x c -c -o /dev/null /dev/null 2>/dev/null && echo $(1))
HARDEN_PROBED := $(call cc_option,-fstack-clash-protection) $(call cc_option,-fcf-protection)
FORTIFY  = $(if $(filter 1,$(SAN)),,$(if $(filter -O -O1 -O2 -O3 -Os -Og -Oz -Ofast,$(CFLAGS)),\
           -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2))
HARDEN_CFLAGS  ?= $(FORTIFY) -fstack-protector-strong $(HARDEN_PROBED) -fPIE
HARDEN_LDFLAGS ?= -pie -Wl,-z,relro,-z,now -Wl,-z,noexecstack
endif

# Hardening first, so that a flag in CFLAGS or LDFLAGS can countermand it.
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(HARDEN_CFLAGS) $(CFLAGS) $(SANFLAGS) $(PKG_CFLAGS) -Ibatchy \
             -I$(BUILD)/gen
ALL_LDFLAGS = $(HARDEN_LDFLAGS) $(LDFLAGS)
LDLIBS  = $(PKG_LIBS) -lpthread -lm
# What the objects are built with, kept in $(BUILD)/flags: objects depend on
# it, so another CC, CFLAGS, SAN or HARDEN in the same BUILD rebuilds them.
BUILD_FLAGS = $(CC) $(ALL_CFLAGS) $(DEPFLAGS) $(ALL_LDFLAGS) $(ALLOC_LIBS) $(BATCHY_LIBS) $(WAITSY_LIBS)

CORE_SRC  = error times names keys cfgload doc rules format route utf8 fields cfgscalar pyjson views track
SHELL_SRC = options cfgfile resp connect store notice hold metrics ui cache page rows reads apply api watch http main
# Waitsy: a pure core (args, ready) and a shell (fetch, main); it shares
# Batchy's times and name checks through batchy-core.a. batchy-run is built
# of the same: its pure runargs, Waitsy's HTTP client (fetch) and runmain.
WAITSY_CORE_SRC  = args ready runargs
WAITSY_SHELL_SRC = fetch main
RUN_SHELL_SRC    = fetch runmain
UNITS     = $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))

CORE_OBJ  = $(CORE_SRC:%=$(BUILD)/obj/%.o)
SHELL_OBJ = $(SHELL_SRC:%=$(BUILD)/obj/%.o)
WAITSY_CORE_OBJ  = $(WAITSY_CORE_SRC:%=$(BUILD)/obj/waitsy/%.o)
WAITSY_SHELL_OBJ = $(WAITSY_SHELL_SRC:%=$(BUILD)/obj/waitsy/%.o)
RUN_SHELL_OBJ    = $(RUN_SHELL_SRC:%=$(BUILD)/obj/waitsy/%.o)

.PHONY: all unit check san lint bench fuzz clean format install uninstall deb
all: $(BUILD)/batchy $(BUILD)/waitsy $(BUILD)/batchy-run $(UNITS:%=$(BUILD)/tests/%)

$(BUILD)/flags: FORCE
	@mkdir -p $(@D)
	@echo '$(BUILD_FLAGS)' | cmp -s - $@ || echo '$(BUILD_FLAGS)' > $@
FORCE:

# Each object depends on the headers it includes, as the compiler lists
# them (-MMD, in a .d file beside the object).
DEPFLAGS = -MMD -MP

$(BUILD)/obj/%.o: batchy/%.c $(BUILD)/flags
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -c -o $@ $<

$(BUILD)/obj/waitsy/%.o: waitsy/%.c $(BUILD)/flags
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -Iwaitsy -c -o $@ $<

# The write script, batchy/plan.lua, as a C array that store.c includes:
# the script is edited and read as Lua, and batchy is still one file.
$(BUILD)/gen/plan_lua.h: batchy/plan.lua
	@mkdir -p $(@D)
	{ echo '/* Made by the Makefile from batchy/plan.lua: edit that. */'; \
	  echo 'static const char plan_script[] = {'; \
	  od -An -v -tx1 $< | sed -e 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  echo '0x00};'; } > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/store.o: $(BUILD)/gen/plan_lua.h

# The dashboard's files, as C arrays that ui.c includes: edited as HTML,
# CSS and JavaScript, and still one binary.
UI_FILES = batchy/ui/index.html batchy/ui/app.css batchy/ui/app.js
$(BUILD)/gen/ui_files.h: $(UI_FILES)
	@mkdir -p $(@D)
	{ echo '/* Made by the Makefile from batchy/ui/: edit those. */'; \
	  for f in $(UI_FILES); do \
	    echo "static const char ui_$$(basename $$f | tr . _)[] = {"; \
	    od -An -v -tx1 $$f | sed -e 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	    echo '0x00};'; \
	  done; } > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/ui.o: $(BUILD)/gen/ui_files.h

$(BUILD)/batchy-core.a: $(CORE_OBJ)
	$(AR) rcs $@ $^

$(BUILD)/waitsy-core.a: $(WAITSY_CORE_OBJ)
	$(AR) rcs $@ $^

$(BUILD)/waitsy: $(WAITSY_SHELL_OBJ) $(BUILD)/waitsy-core.a $(BUILD)/batchy-core.a
	$(CC) $(SANFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(WAITSY_LIBS)

$(BUILD)/batchy-run: $(RUN_SHELL_OBJ) $(BUILD)/waitsy-core.a $(BUILD)/batchy-core.a
	$(CC) $(SANFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(WAITSY_LIBS)

$(BUILD)/batchy: $(SHELL_OBJ) $(BUILD)/batchy-core.a
	$(if $(filter 1,$(SAN))$(ALLOC_LIBS),,$(error mimalloc not found (mimalloc.h): run scripts/deps.sh))
	$(CC) $(SANFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(BATCHY_LIBS) $(ALLOC_LIBS)

# Unit tests link the pure cores, plus options.o for the Redis URL forms,
# and resp.o (with cache.o, whose entries a hash may hold) for the Redis
# commands and replies.
UNIT_SHELL_OBJ = $(BUILD)/obj/options.o $(BUILD)/obj/resp.o $(BUILD)/obj/cache.o $(BUILD)/obj/page.o
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/waitsy-core.a $(BUILD)/batchy-core.a $(UNIT_SHELL_OBJ) $(BUILD)/flags
	@mkdir -p $(@D) $(BUILD)/obj/tests
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) $(DEPFLAGS) -MF $(BUILD)/obj/tests/$*.d -Iwaitsy -o $@ $< $(UNIT_SHELL_OBJ) $(BUILD)/waitsy-core.a $(BUILD)/batchy-core.a $(LDLIBS) $(CMOCKA_LIBS)

# Unit tests: pure logic, no Redis, no network.
unit: $(UNITS:%=$(BUILD)/tests/%)
	@set -e; for t in $^; do echo "== $$t"; $$t; done

# Everything: unit tests, then integration tests against a real redis-server
# and a real batchy process started by the test harness.
check: all unit
	BATCHY_BIN=$(BUILD)/batchy WAITSY_BIN=$(BUILD)/waitsy /usr/bin/python3 tests/integration/run.py

san:
	$(MAKE) SAN=1 check

# Static analysis with the build's -I and -D: cppcheck, then clang-tidy
# (.clang-tidy says which checks and why) on LINT_JOBS files at a time, each
# file's findings printed together. Any finding fails; a false positive is
# suppressed on its line, with the reason.
LINT_SRC   = $(wildcard batchy/*.c waitsy/*.c) tests/bench/minimal.c
LINT_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
LINT_FLAGS = -std=c11 -D_GNU_SOURCE $(PKG_CFLAGS) -Ibatchy -Iwaitsy -I$(BUILD)/gen
CPPCHECK_FLAGS = --quiet --error-exitcode=1 --inline-suppr --std=c11 --library=posix \
                 --enable=warning,performance,portability $(filter -I% -D% -U%,$(LINT_FLAGS))
lint: $(BUILD)/gen/plan_lua.h $(BUILD)/gen/ui_files.h
	cppcheck $(CPPCHECK_FLAGS) $(LINT_SRC)
	printf '%s\n' $(LINT_SRC) | xargs -P $(LINT_JOBS) -I{} sh -c \
	    'out=$$(clang-tidy --quiet "$$1" -- $(LINT_FLAGS) 2>&1); rc=$$?; \
	     printf "%s\n" "$$out" | grep -Ev "^([0-9]+ warnings? generated\.)?$$"; exit $$rc' sh {}

# The HTTP baseline of the benchmark: libmicrohttpd answering a fixed body.
$(BUILD)/bench/minimal: tests/bench/minimal.c $(BUILD)/flags
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(BATCHY_LIBS)

# Speed against the limits of HTTP and Redis on this machine (not a test).
bench:
	scripts/bench.sh

# Fuzzing the pure core with libFuzzer (tests/fuzz/README.md): clang with
# ASan+UBSan, objects and targets in build-fuzz/. Each target runs for
# FUZZ_SECONDS on a scratch copy of its seed corpus, after replaying
# tests/fuzz/regressions/<target>/.
FUZZ_CC      ?= clang
FUZZ_BUILD    = build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS  = cfgload times request format
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS   = -std=c11 -D_GNU_SOURCE $(WARN) -O1 -g $(FUZZ_SAN) \
                $(shell pkg-config --cflags yaml-0.1 libcjson 2>/dev/null) -Ibatchy
FUZZ_LIBS     = $(shell pkg-config --libs yaml-0.1 libcjson 2>/dev/null) -lm
FUZZ_OBJ      = $(CORE_SRC:%=$(FUZZ_BUILD)/obj/%.o)
# Kept between builds: as prerequisites of a pattern rule only, make would
# delete them as intermediate files.
.SECONDARY: $(FUZZ_OBJ)

# The core gets coverage instrumentation (fuzzer-no-link); only the
# targets link libFuzzer's main.
$(FUZZ_BUILD)/obj/%.o: batchy/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(DEPFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(DEPFLAGS) -MF $(FUZZ_BUILD)/obj/$(@F).d -fsanitize=fuzzer -o $@ $< \
	    $(FUZZ_OBJ) $(FUZZ_LIBS)

fuzz: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
	tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Installing (SPEC section 14): PREFIX (/usr/local) and DESTDIR as usual.
# Settings go in SYSCONFDIR: /etc under PREFIX=/usr, else PREFIX/etc.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/batchy
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR    ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
INSTALLED = $(DESTDIR)$(BINDIR)/batchy $(DESTDIR)$(BINDIR)/waitsy $(DESTDIR)$(BINDIR)/batchy-run \
            $(DESTDIR)$(MANDIR)/man8/batchy.8 $(DESTDIR)$(MANDIR)/man1/waitsy.1 \
            $(DESTDIR)$(MANDIR)/man1/batchy-run.1 $(DESTDIR)$(DOCDIR)/examples/sales_daily.yaml \
            $(DESTDIR)$(DOCDIR)/examples/batchy-alerts.yml $(DESTDIR)$(UNITDIR)/batchy.service \
            $(DESTDIR)$(SYSCONFDIR)/default/batchy $(DESTDIR)$(SYSCONFDIR)/batchy/cfg/sales_daily.yaml
SUBST = sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g'

install: $(BUILD)/batchy $(BUILD)/waitsy $(BUILD)/batchy-run
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/default \
	    $(DESTDIR)$(SYSCONFDIR)/batchy/cfg
	install -m 755 $(BUILD)/batchy $(BUILD)/waitsy $(BUILD)/batchy-run $(DESTDIR)$(BINDIR)
	install -m 644 docs/man/batchy.8 $(DESTDIR)$(MANDIR)/man8
	install -m 644 docs/man/waitsy.1 docs/man/batchy-run.1 $(DESTDIR)$(MANDIR)/man1
	install -m 644 cfg/sales_daily.yaml cfg/prometheus/batchy-alerts.yml $(DESTDIR)$(DOCDIR)/examples
	$(SUBST) dist/batchy.service.in > $(DESTDIR)$(UNITDIR)/batchy.service
	chmod 644 $(DESTDIR)$(UNITDIR)/batchy.service
	# settings and workflows are the operator's: never overwritten
	[ -e $(DESTDIR)$(SYSCONFDIR)/default/batchy ] || \
	    { $(SUBST) dist/batchy.default.in > $(DESTDIR)$(SYSCONFDIR)/default/batchy && \
	      chmod 644 $(DESTDIR)$(SYSCONFDIR)/default/batchy; }
	[ -e $(DESTDIR)$(SYSCONFDIR)/batchy/cfg/sales_daily.yaml ] || \
	    install -m 644 cfg/sales_daily.yaml $(DESTDIR)$(SYSCONFDIR)/batchy/cfg

# What install wrote, but settings an operator changed (and the folders).
uninstall:
	rm -f $(filter-out $(DESTDIR)$(SYSCONFDIR)/%,$(INSTALLED))
	cmp -s $(DESTDIR)$(SYSCONFDIR)/batchy/cfg/sales_daily.yaml cfg/sales_daily.yaml && \
	    rm -f $(DESTDIR)$(SYSCONFDIR)/batchy/cfg/sales_daily.yaml || true
	$(SUBST) dist/batchy.default.in | cmp -s - $(DESTDIR)$(SYSCONFDIR)/default/batchy && \
	    rm -f $(DESTDIR)$(SYSCONFDIR)/default/batchy || true

# The Debian package (debian/), built from a copy of the sources under the
# build folder so that nothing is written outside the clone:
# $(BUILD)/batchy_<version>_<arch>.deb.
DEB_DIR = $(BUILD)/deb
deb:
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/batchy
	cp -r batchy waitsy cfg dist debian Makefile $(DEB_DIR)/batchy/
	mkdir -p $(DEB_DIR)/batchy/docs && cp -r docs/man $(DEB_DIR)/batchy/docs/
	# without this make's variables (BUILD=...), which its own would inherit
	cd $(DEB_DIR)/batchy && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u BUILD dpkg-buildpackage -b -us -uc
	mv $(DEB_DIR)/batchy_*.deb $(BUILD)/

format:
	clang-format -i batchy/*.c batchy/*.h waitsy/*.c waitsy/*.h tests/unit/*.c tests/bench/*.c

# Every build folder: the default, the sanitizer build, the fuzzers, and
# any BUILD=... given on this command line.
clean:
	rm -rf build build-san $(FUZZ_BUILD) $(BUILD)

-include $(wildcard $(BUILD)/obj/*.d $(BUILD)/obj/waitsy/*.d $(BUILD)/obj/tests/*.d \
                    $(FUZZ_BUILD)/obj/*.d)
