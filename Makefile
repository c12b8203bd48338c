# Batchy and Waitsy. `make` builds, `make check` runs every test,
# `make san` builds with ASan+UBSan into build-san/ and runs every test there.
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
UNITS     = $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))

CORE_OBJ  = $(CORE_SRC:%=$(BUILD)/obj/%.o)
SHELL_OBJ = $(SHELL_SRC:%=$(BUILD)/obj/%.o)

.PHONY: all unit check san clean format
all: $(BUILD)/batchy $(UNITS:%=$(BUILD)/tests/%)

$(BUILD)/obj/%.o: batchy/%.c batchy/batchy.h batchy/shell.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/batchy-core.a: $(CORE_OBJ)
	$(AR) rcs $@ $^

$(BUILD)/batchy: $(SHELL_OBJ) $(BUILD)/batchy-core.a
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests link the pure core, plus options.o for the Redis URL forms.
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/batchy-core.a $(BUILD)/obj/options.o batchy/batchy.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/obj/options.o $(BUILD)/batchy-core.a $(LDLIBS) $(CMOCKA_LIBS)

# Unit tests: pure logic, no Redis, no network.
unit: $(UNITS:%=$(BUILD)/tests/%)
	@set -e; for t in $^; do echo "== $$t"; $$t; done

# Everything: unit tests, then integration tests against a real redis-server
# and a real batchy process started by the test harness.
check: all unit
	BATCHY_BIN=$(BUILD)/batchy python3 tests/integration/run.py

san:
	$(MAKE) SAN=1 check

format:
	clang-format -i batchy/*.c batchy/*.h tests/unit/*.c

clean:
	rm -rf build build-san
