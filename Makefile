# Two entry points for a fresh machine: `make demo` and `make test`. Each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .stamps
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_VALIDATION := false

.PHONY: demo test test-fast lint typecheck pytest deps system-deps server bench clean wheelhouse \
	bench-quality-deps bench-quality bench-broad twin-root

demo: deps
	$(BIN)/optfleet demo

test: deps system-deps twin-root lint typecheck pytest

deps: $(STAMPS)/venv $(STAMPS)/node $(STAMPS)/wheelhouse.done

$(STAMPS)/venv: requirements/dev.lock pyproject.toml
	@mkdir -p $(STAMPS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==0.13.8
	$(BIN)/uv pip sync -q --compile-bytecode --python $(BIN)/python requirements/dev.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $@

$(STAMPS)/node: package-lock.json
	@mkdir -p $(STAMPS)
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# infra: wheels the fleet's instances install offline (the agent's pure-python dependencies for
# the workers' python3.11, see docs/agent.md), the control plane's server wheels (requirements/server.lock, regenerate
# with `uv pip compile pyproject.toml --extra server --extra aws --python-version 3.11
# --python-platform x86_64-manylinux_2_28 --generate-hashes -o requirements/server.lock`) and the
# build backend that builds optfleet's own wheel at synth time
# without an index. Downloaded once here; synth and tests only read them.
wheelhouse: $(STAMPS)/wheelhouse.done

$(STAMPS)/wheelhouse.done: requirements/agent.lock requirements/build.lock requirements/server.lock | $(STAMPS)/venv
	rm -rf $(STAMPS)/wheelhouse $(STAMPS)/build-wheels $(STAMPS)/server-wheelhouse
	$(BIN)/python -m pip download -q --disable-pip-version-check --require-hashes --no-deps \
	  --only-binary=:all: --python-version 3.11 --implementation py --abi none --platform any \
	  -d $(STAMPS)/wheelhouse -r requirements/agent.lock
	$(BIN)/python -m pip download -q --disable-pip-version-check --require-hashes --no-deps \
	  --only-binary=:all: -d $(STAMPS)/build-wheels -r requirements/build.lock
	@# The control plane's server for AL2023's python3.11 on x86_64 (glibc 2.34).
	$(BIN)/python -m pip download -q --disable-pip-version-check --require-hashes --no-deps \
	  --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 --abi abi3 \
	  --abi none --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 --platform any \
	  -d $(STAMPS)/server-wheelhouse -r requirements/server.lock
	@# Bytecode for the CDK's huge generated modules (PYTHONDONTWRITEBYTECODE would otherwise
	@# make every synth and test compile them again: ~8 s each).
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -c "import infra.fleet_stack, cdk_nag"
	touch $@

# The instance twin's root file system (tests/twin/): Debian bookworm with systemd, cloud-init,
# python3.11 and the AWS CLI, built once (debootstrap, ~1.5 min) and read-only for the tests.
# A machine that cannot build it (no root, no debootstrap/systemd-nspawn) records why, and the
# twin tests skip with that reason; any other failure fails the build.
twin-root: $(STAMPS)/twin-root.done

$(STAMPS)/twin-root.done: tests/twin/build-rootfs.sh requirements/twin-awscli.lock | $(STAMPS)/venv
	@rm -f $(STAMPS)/twin-unavailable
	@if [ "$$(id -u)" != 0 ]; then \
	  echo "the instance twin needs root (systemd-nspawn, network namespaces)" >$(STAMPS)/twin-unavailable; \
	elif ! command -v debootstrap >/dev/null || ! command -v systemd-nspawn >/dev/null; then \
	  echo "debootstrap/systemd-nspawn missing and not installable here (make system-deps)" >$(STAMPS)/twin-unavailable; \
	else \
	  bash tests/twin/build-rootfs.sh $(STAMPS)/twin-root requirements/twin-awscli.lock $(BIN)/python; \
	fi
	touch $@

# Debian packages the tests use; installed only when missing. A failed download is retried once (a
# transient mirror error once failed a fresh `make test`).
APT_INSTALL = sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$$@" >/dev/null' apt-install
system-deps:
	@missing=""; \
	test -x /usr/lib/postgresql/15/bin/initdb || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v shellcheck >/dev/null || missing="$$missing shellcheck"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(APT_INSTALL) $$missing || { echo "retrying the Debian download once"; $(APT_INSTALL) $$missing; }; \
	fi
	@# The instance twin's tools: best effort, a machine without them skips the twin (twin-root).
	@twin=""; \
	command -v systemd-nspawn >/dev/null || twin="$$twin systemd-container"; \
	command -v debootstrap >/dev/null || twin="$$twin debootstrap"; \
	command -v ip >/dev/null || twin="$$twin iproute2"; \
	if [ -n "$$twin" ]; then \
	  echo "installing:$$twin"; \
	  $(APT_INSTALL) $$twin || $(APT_INSTALL) $$twin \
	    || echo "could not install$$twin: the instance twin tests will skip"; \
	fi

lint: deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check worker_bootstrap suggestion_server optfleet infra emulators

typecheck: deps
	@# mypy 2.x cannot target 3.9; 3.9 itself is checked by tests/agent/test_python39.py.
	$(BIN)/mypy --python-version 3.10 worker_bootstrap
	$(BIN)/mypy suggestion_server optfleet infra emulators

pytest: deps
	$(BIN)/pytest -q --durations=30 $(PYTEST_ARGS)

# For developers: everything but the slow modules (tests/conftest.py SLOW_MODULES), no lint.
test-fast: deps
	$(BIN)/pytest -q -m "not slow" $(PYTEST_ARGS)

server: deps
	$(BIN)/optfleet server

bench: deps system-deps
	$(BIN)/python -m benchmarks.run_all

# The quality benchmarks' optional dependencies: Optuna's GPSampler needs torch and scipy, its
# CmaEsSampler cmaes, the SVC task scikit-learn, the broad benchmark COCO's BBOB suite
# (coco-experiment, module cocoex). Kept out of every lock file: PyPI's x86_64 torch wheel pulls
# the CUDA libraries (gigabytes); point TORCH at a CPU-only build where pip finds one.
TORCH ?= torch==2.13.0
bench-quality-deps: deps
	$(BIN)/python -m pip install -q --disable-pip-version-check scipy==1.17.1 cmaes==0.13.1 \
	  scikit-learn==1.9.1 coco-experiment==2.8.2 $(TORCH)

# 40 seeds x 9 problems x 5 methods: hours on 2 cores, most of it Optuna's GPSampler (about 40 CPU s a run).
bench-quality: bench-quality-deps
	$(BIN)/python -m benchmarks.bench_quality $(BENCH_QUALITY_ARGS)

# The broad benchmark (docs/benchmarks.md, "Broad benchmark"): the test split as reported, one
# JSON file per run under benchmarks/results/broad (re-running resumes). Under nice: the machine is
# shared. BENCH_BROAD_ARGS="--quick" for a CI-sized check.
bench-broad: bench-quality-deps
	nice -n 15 $(BIN)/python -m benchmarks.bench_broad --split test $(BENCH_BROAD_ARGS)

clean:
	rm -rf $(VENV) node_modules $(STAMPS) cdk.out .mypy_cache .ruff_cache .pytest_cache
