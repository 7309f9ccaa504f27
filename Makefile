# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run demo test lint typecheck packages pytest clean bench

LOCK   := requirements/dev.lock
# The pip-tools that `make lock` uses, pinned so that refreshing the locks is repeatable too.
PIP_TOOLS := pip-tools==7.7.0

# Installs come only from the lock (exact versions, hashes checked, nothing resolved here),
# so a release elsewhere cannot change what a fresh clone runs.  pypaxos itself is installed
# editable, built with the locked setuptools.
$(STAMP): $(LOCK) pyproject.toml
	$(PYTHON) tools/lock.py --check
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Recompile requirements/*.lock from pyproject.toml with the newest allowed releases, on
# purpose, then run every check against them.  (After adding a dependency to pyproject.toml,
# `python3 tools/lock.py --refresh PIP_COMPILE` adds it and keeps every other pin.)
.PHONY: lock
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet '$(PIP_TOOLS)'
	$(PYTHON) tools/lock.py --refresh .venv-lock/bin/pip-compile --upgrade
	rm -rf .venv-lock $(VENV)
	$(MAKE) test

run: $(STAMP)
	$(BIN)/pypaxos live

demo: $(STAMP)
	$(BIN)/pypaxos demo

test: lint typecheck packages pytest

# Debian's Chromium for the explorer's browser test, nftables and iptables for the torture
# harness's network namespaces (both packet filters are tested), redis-tools
# (redis-benchmark) for the benchmark's own test and redis-server for the differential test of
# the string commands (tests/runtime/test_runtime_redis_diff.py), podman (with runc, which
# works with this kernel's hybrid cgroups where crun does not) and debootstrap for the container
# test (tests/deploy/test_deploy_podman.py; slirp4netns and uidmap come with podman), fuse3
# (libfuse 3 and fusermount3) for the power-cut filesystem (pypaxos.torture.powerfs); the tests
# that need them skip, saying why, if they cannot be installed.
packages:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v nft >/dev/null || [ -x /usr/sbin/nft ] || missing="$$missing nftables"; \
	command -v iptables-restore >/dev/null || [ -x /usr/sbin/iptables-restore ] || missing="$$missing iptables"; \
	command -v redis-benchmark >/dev/null || missing="$$missing redis-tools"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v podman >/dev/null || missing="$$missing podman"; \
	command -v runc >/dev/null || [ -x /usr/sbin/runc ] || missing="$$missing runc"; \
	command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || missing="$$missing debootstrap"; \
	command -v fusermount3 >/dev/null || missing="$$missing fuse3"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && apt-get install -y -qq $$missing >/dev/null) \
		|| echo "could not install$$missing: the tests that need them will be skipped"; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check src tests tools bench
	$(BIN)/ruff format --check src tests tools bench

typecheck: $(STAMP)
	$(BIN)/mypy

# The suite in two runs.  The pure, deterministic tests (the protocol, the simulator, the
# checkers, the derandomized fuzzing: they start no server, open no socket and assert nothing
# on time) run on every core with pytest-xdist; everything else (real processes, sockets,
# namespaces, containers, the torture harness) runs serially after them, as timing-sensitive
# tests need a quiet machine.
# A new test lands in its group by its directory.  Both runs always run; either failing fails
# `make pytest`.  A plain `.venv/bin/pytest` still runs everything, serially (docs/testing.md).
PARALLEL_TESTS := tests/core tests/multi tests/kv tests/sim tests/lincheck tests/modelcheck tests/fuzz
pytest: $(STAMP)
	@status=0; \
	$(BIN)/pytest -n auto $(PARALLEL_TESTS) || status=$$?; \
	$(BIN)/pytest $(addprefix --ignore=,$(PARALLEL_TESTS)) || status=$$?; \
	exit $$status

# Issue 7: pypaxos, PySyncObj, Redis and etcd side by side on this machine, in one run, then
# the large-data scenario (throughput, stalls, memory per key and recovery at 100k, 1m and 10m
# keys, pypaxos against Redis; a size that would not fit in memory is skipped and says so).
# Installs Debian's redis-server, redis-tools, etcd-server and etcd-client when root and
# missing, and the `bench` extra (pysyncobj, matplotlib) into the venv; appends a dated section
# to bench/RESULTS.md and writes bench/plots/*.png. BENCH_ARGS goes to bench/run_all.py, e.g.
# BENCH_ARGS="--quick", "--runs 5 --catch-up-entries 200000", "--sizes 100k,1m" or
# "--skip scale".
BENCH_ARGS ?=
bench: $(STAMP)
	@missing=""; \
	for tool in redis-server:redis-server redis-benchmark:redis-tools etcd:etcd-server etcdctl:etcd-client; do \
		command -v $${tool%%:*} >/dev/null || missing="$$missing $${tool#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
		else echo "make bench needs:$$missing (apt-get install as root)"; exit 1; fi; \
	fi
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements/bench.lock
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

# Longer fuzzing of the wire and disk readers (tests/fuzz): FUZZ_EXAMPLES random examples per
# target instead of the fixed, derandomized few hundred that `make test` runs.
FUZZ_EXAMPLES ?= 20000
.PHONY: fuzz
fuzz: $(STAMP)
	PYPAXOS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/fuzz

clean:
	rm -rf $(VENV) .venv-lock build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache

# A long Jepsen-style run of a real cluster under every fault (network namespaces when root).
.PHONY: torture
TORTURE_TIME ?= 600
torture: $(STAMP)
	$(BIN)/pypaxos torture --time $(TORTURE_TIME) --nodes 5 --nemesis all
