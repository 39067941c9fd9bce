# Posthorn build. `make` builds build/posthorn; `make test` runs every suite,
# then again under AddressSanitizer + UndefinedBehaviorSanitizer.
# Sources are found by globbing src/: a new module needs no Makefile edit.

PKGS     := libevent libevent_openssl libevent_pthreads openssl libcares sqlite3 libsodium jansson inih
BUILD    ?= build
SAN      ?=
CC       ?= cc
PYTHON   := /usr/bin/python3

WARN     := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wno-unused-parameter
ifeq ($(CI),true)
WARN     += -Werror
endif
OPT      ?= -O2 -g
# pkg-config runs when make starts. On a fresh machine pkg-config and the
# -dev packages are not there yet: the targets that install them (test, run,
# bench) install first, then build in a sub-make that asks pkg-config anew.
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
PKG_OK     := $(shell pkg-config --exists $(PKGS) 2>/dev/null && echo yes)
CFLAGS   := $(OPT) -std=c11 -D_GNU_SOURCE $(WARN) -Isrc $(PKG_CFLAGS)
LDLIBS   := $(PKG_LIBS) -lpthread
ifeq ($(SAN),1)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif

SRC      := $(shell find src -name '*.c' | sort)
LIB_SRC  := $(filter-out src/main.c,$(SRC))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all unit unit-bin e2e test test-one pkgcheck deps run fuzz fuzz-run fuzz-smoke docs check-docs check-format clean bench bench-smoke format

all: $(BUILD)/posthorn $(BUILD)/gen-confdoc

$(BUILD)/obj/%.o: %.c | pkgcheck
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libposthorn.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/posthorn: $(BUILD)/obj/src/main.o $(BUILD)/libposthorn.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/gen-confdoc: $(BUILD)/obj/tools/gen-confdoc.o $(BUILD)/libposthorn.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/libposthorn.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# Compiling without the libraries' flags fails late and obscurely: say so.
pkgcheck:
ifneq ($(PKG_OK),yes)
	@echo "missing build dependencies (pkg-config $(PKGS)): run scripts/deps.sh, or make test / make run, which install them" >&2
	@exit 1
endif

deps:
	@scripts/deps.sh --check >/dev/null 2>&1 || scripts/deps.sh

run: deps
	$(MAKE) $(BUILD)/posthorn
	$(BUILD)/posthorn serve

unit-bin: $(UNIT_BIN)

# Builds and runs every unit suite.
unit: unit-bin
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# The differential Mustache test (tests/e2e/test_tmpl_diff.py) runs the
# renderer through this driver, and mustache.js at the version that
# tests/tmpl/package-lock.json pins (npm ci installs it when missing).
TMPL_JS := tests/tmpl/node_modules/mustache/mustache.js

$(BUILD)/tmpl-render: $(BUILD)/obj/tests/tmpl/render.o $(BUILD)/libposthorn.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(TMPL_JS): tests/tmpl/package-lock.json
	cd tests/tmpl && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# PYTEST_ARGS picks tests (make e2e PYTEST_ARGS='tests/e2e/test_smtp.py -k auth').
e2e: all $(BUILD)/tmpl-render $(TMPL_JS)
	POSTHORN_BIN=$(abspath $(BUILD)/posthorn) TMPL_RENDER=$(abspath $(BUILD)/tmpl-render) \
	  $(PYTHON) -m pytest -q -x -p no:cacheprovider $(or $(PYTEST_ARGS),tests/e2e)

# One pass of every suite against one build.
test-one: unit e2e

test: deps
	$(MAKE) check-docs check-format
	$(MAKE) test-one
	$(MAKE) test-one BUILD=build/san SAN=1 OPT="-O1 -g"

# The config reference and example are generated from the table in src/conf/.
docs: $(BUILD)/gen-confdoc
	$(BUILD)/gen-confdoc markdown > docs/config.md
	$(BUILD)/gen-confdoc example > posthorn.conf.example

check-docs: $(BUILD)/gen-confdoc
	@$(BUILD)/gen-confdoc markdown | diff -u docs/config.md - && \
	 $(BUILD)/gen-confdoc example | diff -u posthorn.conf.example - || \
	 { echo "docs/config.md or posthorn.conf.example is stale: run make docs"; exit 1; }

# libFuzzer targets for every parser. FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 300
FUZZ_SRC     := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN     := $(FUZZ_SRC:fuzz/%.c=build/fuzz/%)
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined
# Fuzz targets link only PURE files (libc + util), so they need no sockets.
FUZZ_PURE    := src/smtpd/smtp_parse.c src/smtpd/smtp_data.c src/util/util.c \
                src/smtpc/smtpc_reply.c src/smtpc/smtpc_policy.c
build/fuzz/%: fuzz/%.c $(FUZZ_PURE)
	@mkdir -p build/fuzz
	clang $(FUZZ_CFLAGS) -o $@ $^

# The template renderer reads its data through jansson: its own link line.
build/fuzz/fuzz_tmpl: fuzz/fuzz_tmpl.c src/util/util.c $(wildcard src/tmpl/*.c)
	@mkdir -p build/fuzz
	clang $(FUZZ_CFLAGS) -o $@ $^ -ljansson

fuzz: deps
	$(MAKE) fuzz-run

fuzz-run: $(FUZZ_BIN)
	@set -e; for f in $(FUZZ_BIN); do \
	  mkdir -p build/fuzz/corpus-$$(basename $$f); \
	  echo "== $$f for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 build/fuzz/corpus-$$(basename $$f) fuzz/seeds; \
	done

fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=20

bench: deps
	$(MAKE) all
	bench/run.sh

bench-smoke: deps
	$(MAKE) all
	BENCH_SMOKE=1 bench/run.sh

FORMAT_SRC := $(SRC) $(wildcard src/*/*.h tests/unit/*.c tests/unit/*.h tests/tmpl/*.c fuzz/*.c \
                tools/*.c bench/*.c)

format:
	clang-format -i $(FORMAT_SRC)

# make test fails when a file is not as clang-format (.clang-format) has it.
check-format:
	@clang-format --dry-run -Werror $(FORMAT_SRC) || \
	 { echo "run make format" >&2; exit 1; }

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
