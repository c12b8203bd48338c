# Batchy and Waitsy. `make` builds both, `make check` runs every test,
# `make san` builds with ASan+UBSan into build-san/ and runs every test there,
# `make bench` measures speed (scripts/bench.sh).
CC      ?= cc
SAN     ?= 0
ifeq ($(SAN),1)
BUILD   ?= build-san
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else
BUILD   ?= build
SANFLAGS =
endif

PKGS      = hiredis libmicrohttpd yaml-0.1 libcjson libcurl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

WARN    = -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SANFLAGS) $(PKG_CFLAGS) -Ibatchy
LDLIBS  = $(PKG_LIBS) -lpthread -lm

CORE_SRC  = error times names cfgload doc rules format route
SHELL_SRC = options store http main
# Waitsy: a pure core (args, ready) and a shell (fetch, main); it shares
# Batchy's times and name checks through batchy-core.a.
WAITSY_CORE_SRC  = args ready
WAITSY_SHELL_SRC = fetch main
UNITS     = $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))

CORE_OBJ  = $(CORE_SRC:%=$(BUILD)/obj/%.o)
SHELL_OBJ = $(SHELL_SRC:%=$(BUILD)/obj/%.o)
WAITSY_CORE_OBJ  = $(WAITSY_CORE_SRC:%=$(BUILD)/obj/waitsy/%.o)
WAITSY_SHELL_OBJ = $(WAITSY_SHELL_SRC:%=$(BUILD)/obj/waitsy/%.o)

.PHONY: all unit check san bench clean format
all: $(BUILD)/batchy $(BUILD)/waitsy $(UNITS:%=$(BUILD)/tests/%)

$(BUILD)/obj/%.o: batchy/%.c batchy/batchy.h batchy/shell.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/obj/waitsy/%.o: waitsy/%.c waitsy/waitsy.h waitsy/fetch.h batchy/batchy.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Iwaitsy -c -o $@ $<

$(BUILD)/batchy-core.a: $(CORE_OBJ)
	$(AR) rcs $@ $^

$(BUILD)/waitsy-core.a: $(WAITSY_CORE_OBJ)
	$(AR) rcs $@ $^

$(BUILD)/waitsy: $(WAITSY_SHELL_OBJ) $(BUILD)/waitsy-core.a $(BUILD)/batchy-core.a
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/batchy: $(SHELL_OBJ) $(BUILD)/batchy-core.a
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests link the pure cores, plus options.o for the Redis URL forms.
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/waitsy-core.a $(BUILD)/batchy-core.a $(BUILD)/obj/options.o batchy/batchy.h waitsy/waitsy.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Iwaitsy -o $@ $< $(BUILD)/obj/options.o $(BUILD)/waitsy-core.a $(BUILD)/batchy-core.a $(LDLIBS) $(CMOCKA_LIBS)

# Unit tests: pure logic, no Redis, no network.
unit: $(UNITS:%=$(BUILD)/tests/%)
	@set -e; for t in $^; do echo "== $$t"; $$t; done

# Everything: unit tests, then integration tests against a real redis-server
# and a real batchy process started by the test harness.
check: all unit
	BATCHY_BIN=$(BUILD)/batchy WAITSY_BIN=$(BUILD)/waitsy python3 tests/integration/run.py

san:
	$(MAKE) SAN=1 check

# The HTTP baseline of the benchmark: libmicrohttpd answering a fixed body.
$(BUILD)/bench/minimal: tests/bench/minimal.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LDLIBS)

# Speed against the limits of HTTP and Redis on this machine (not a test).
bench:
	scripts/bench.sh

format:
	clang-format -i batchy/*.c batchy/*.h waitsy/*.c waitsy/*.h tests/unit/*.c tests/bench/*.c

clean:
	rm -rf build build-san
