# windowpay: `make run` starts the service, `make test` runs every check.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9

PROMETHEUS := .tools/prometheus/usr/bin/prometheus

.PHONY: install tools browser fuse run test lint typecheck unit integration e2e fuzz faults proto lock clean

$(STAMP): pyproject.toml requirements.lock
	@command -v redis-server >/dev/null || { command -v apt-get >/dev/null && \
		apt-get install -y -q redis-server >/dev/null; } || \
		{ echo "redis-server is required (Debian package redis-server)"; exit 1; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
		{ command -v apt-get >/dev/null && { apt-get install -y -q postgresql >/dev/null || \
		{ apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }; }; } || \
		{ echo "PostgreSQL is required (Debian package postgresql)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync -q --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps --no-build-isolation -e .
	touch $@

install: $(STAMP)

# The tests check the alert rules with promtool and run a real Prometheus: Debian's
# package, unpacked here (no service is installed or started).
$(PROMETHEUS):
	mkdir -p .tools/download
	cd .tools/download && { apt-get download -q prometheus 2>/dev/null || \
		{ apt-get update -q >/dev/null && apt-get download -q prometheus; }; }
	dpkg-deb -x $$(ls .tools/download/prometheus_*.deb | head -1) .tools/prometheus
	touch $@

tools: $(PROMETHEUS)

# The console's browser tests drive Debian's headless Chromium (no browser download).
browser:
	@command -v chromium >/dev/null || { command -v apt-get >/dev/null && \
		{ apt-get install -y -q chromium >/dev/null || \
		{ apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; }; } || \
		{ echo "chromium is required for the browser tests (Debian package chromium)"; exit 1; }

# The power-cut tests (tests/faults/powercut/) mount a FUSE filesystem: Debian's fuse3
# (fusermount3) and libfuse3, the library mfusepy loads.
fuse:
	@{ command -v fusermount3 >/dev/null && ldconfig -p | grep -q libfuse3.so; } || \
		{ command -v apt-get >/dev/null && \
		{ apt-get install -y -q fuse3 libfuse3-3 >/dev/null || \
		{ apt-get update -q >/dev/null && apt-get install -y -q fuse3 libfuse3-3 >/dev/null; }; }; } || \
		{ echo "FUSE is required for the power-cut tests (Debian packages fuse3, libfuse3-3)"; exit 1; }

run: $(STAMP)
	$(BIN)/windowpay serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

test: lint typecheck browser fuse $(STAMP) $(PROMETHEUS)
	$(BIN)/pytest -q

# The front door's property tests at length: 20,000 generated calls (the suite runs 2,000).
fuzz: $(STAMP)
	WINDOWPAY_FUZZ_EXAMPLES=$${WINDOWPAY_FUZZ_EXAMPLES:-20000} $(BIN)/pytest -q -s \
		tests/e2e/test_fuzz.py

# The fault suite at full size (200 payments in flight per fault); `make test` runs it
# CI-sized. Figures land in var/faults-report.json, logs in var/faults/.
faults: $(STAMP)
	WINDOWPAY_FAULTS=full $(BIN)/pytest tests/faults -q -s

proto: $(STAMP)
	$(BIN)/python -m orchestrator.protogen

# Re-pin every dependency (needs the package index); commit both lock files after.
# requirements-runtime.lock is the same pins without the dev tools (the Dockerfile's).
lock: $(STAMP)
	$(BIN)/uv pip compile -q --python-version 3.11 --extra dev --generate-hashes \
		--output-file requirements.lock pyproject.toml
	$(BIN)/uv pip compile -q --python-version 3.11 --generate-hashes \
		--constraint requirements.lock --output-file requirements-runtime.lock pyproject.toml

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache
