# windowpay: `make run` starts the service, `make test` runs every check.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9

PROMETHEUS := .tools/prometheus/usr/bin/prometheus
LOCALES := orchestrator/console/locales
CATALOGS := $(patsubst %.po,%.mo,$(wildcard $(LOCALES)/*/LC_MESSAGES/messages.po))
AXE := tests/browser/node_modules/axe-core/axe.min.js
SSLYZE := .tools/sslyze/bin/sslyze

.PHONY: install tools sslyze browser fuse catalogs translations run test lint typecheck unit \
	fuzz faults proto lock clean mutate cluster

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

# The TLS scanner of the tests (docs/SECURITY.md): a venv of its own, from its own hashed
# lock, since sslyze pins an older cryptography than windowpay's.
$(SSLYZE): requirements-sslyze.lock $(STAMP)
	rm -rf .tools/sslyze
	$(PYTHON) -m venv .tools/sslyze
	$(BIN)/uv pip sync -q --require-hashes --python .tools/sslyze/bin/python \
		requirements-sslyze.lock
	touch $@

sslyze: $(SSLYZE)

# The console's browser tests drive Debian's headless Chromium (no browser download), see
# Chinese through Debian's CJK fonts, and run axe-core (pinned by package-lock.json) in
# every page.
BROWSER_PACKAGES := chromium fonts-noto-cjk
browser: $(AXE)
	@test "$$(dpkg-query -W -f='$${db:Status-Status}\n' $(BROWSER_PACKAGES) 2>/dev/null | \
		grep -c '^installed$$')" = $(words $(BROWSER_PACKAGES)) || \
		{ command -v apt-get >/dev/null && \
		{ apt-get install -y -q $(BROWSER_PACKAGES) >/dev/null || \
		{ apt-get update -q >/dev/null && apt-get install -y -q $(BROWSER_PACKAGES) >/dev/null; }; }; } || \
		{ echo "the browser tests need Debian's $(BROWSER_PACKAGES)"; exit 1; }

$(AXE): tests/browser/package.json tests/browser/package-lock.json
	@command -v npm >/dev/null || { command -v apt-get >/dev/null && \
		{ apt-get install -y -q npm >/dev/null || \
		{ apt-get update -q >/dev/null && apt-get install -y -q npm >/dev/null; }; }; } || \
		{ echo "npm is required to install axe-core for the browser tests"; exit 1; }
	cd tests/browser && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The console's languages: the committed .po catalogs, compiled (.mo is not committed).
$(LOCALES)/%/LC_MESSAGES/messages.mo: $(LOCALES)/%/LC_MESSAGES/messages.po $(STAMP)
	$(BIN)/pybabel -q compile -D messages -l $* -i $< -o $@

catalogs: $(CATALOGS)

# After changing a string of the console: extract them all again and merge them into every
# catalog; then translate what is new (docs/CONSOLE.md, "Adding a language").
translations: $(STAMP)
	mkdir -p build
	$(BIN)/pybabel -q extract -F orchestrator/console/babel.cfg --no-location --sort-output \
		--project windowpay -o build/messages.pot orchestrator/console
	$(BIN)/pybabel -q update -i build/messages.pot -d $(LOCALES) -D messages --no-fuzzy-matching \
		--ignore-obsolete --ignore-pot-creation-date -w 100


# The power-cut tests (tests/faults/powercut/) mount a FUSE filesystem: Debian's fuse3
# (fusermount3) and libfuse3, the library mfusepy loads.
fuse:
	@{ command -v fusermount3 >/dev/null && ldconfig -p | grep -q libfuse3.so; } || \
		{ command -v apt-get >/dev/null && \
		{ apt-get install -y -q fuse3 libfuse3-3 >/dev/null || \
		{ apt-get update -q >/dev/null && apt-get install -y -q fuse3 libfuse3-3 >/dev/null; }; }; } || \
		{ echo "FUSE is required for the power-cut tests (Debian packages fuse3, libfuse3-3)"; exit 1; }

run: $(STAMP) catalogs
	$(BIN)/windowpay serve

# The cluster mode on this machine: a Ray cluster of two nodes (Ray's own multi-node
# facility), the service-point actors spread over them (docs/SCALING.md).
cluster: $(STAMP) catalogs
	$(BIN)/windowpay serve --local-cluster 2 --data-dir var/cluster

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) catalogs
	$(BIN)/pytest tests/unit -q

# pytest-xdist workers (tests/grouping.py keeps each deployment's tests in one worker);
# 0 runs the suite in one process. Two, not three: with three, three Ray deployments start
# and fail over at once on the two cores, and restarting every actor took 37 s instead of
# 8 (docs/TESTING.md, "In parallel").
TEST_WORKERS ?= 2
test: lint typecheck browser fuse catalogs $(STAMP) $(PROMETHEUS) $(SSLYZE)
	$(BIN)/pytest -q -n $(TEST_WORKERS)

# The front door's property tests at length: 20,000 generated calls (the suite runs 2,000).
fuzz: $(STAMP)
	WINDOWPAY_FUZZ_EXAMPLES=$${WINDOWPAY_FUZZ_EXAMPLES:-20000} $(BIN)/pytest -q -s -n 0 \
		tests/e2e/test_fuzz.py

# The fault suite at full size (200 payments in flight per fault); `make test` runs it
# CI-sized. Figures land in var/faults-report.json, logs in var/faults/.
faults: $(STAMP)
	WINDOWPAY_FAULTS=full $(BIN)/pytest tests/faults -q -s -n 0

# Mutation testing of the money paths (docs/TESTING.md): mutmut, one mutant at a time.
# MODULES picks groups: domain handlers providers channels access reconcile (all by default).
# `.venv/bin/mutmut results` lists the survivors, `.venv/bin/mutmut show NAME` one diff.
MODULES ?= domain handlers providers channels access reconcile
MUTANTS_domain := orchestrator.domain.*
MUTANTS_handlers := orchestrator.servicepoint.handlers.* orchestrator.domain.commands.*
MUTANTS_providers := orchestrator.providers.engine.* orchestrator.providers.qr_driver.*
MUTANTS_channels := orchestrator.channels.*
MUTANTS_access := orchestrator.access.policy.* orchestrator.access.supervisors.* \
	orchestrator.store.lockout.*
MUTANTS_reconcile := orchestrator.reconcile.*
mutate: $(STAMP) catalogs
	$(BIN)/mutmut run --max-children 1 $(foreach m,$(MODULES),$(MUTANTS_$(m)))
	$(BIN)/python -m tests.mutation_scores

proto: $(STAMP)
	$(BIN)/python -m orchestrator.protogen

# Re-pin every dependency (needs the package index); commit the lock files after.
# requirements-runtime.lock is the same pins without the dev tools (the Dockerfile's);
# requirements-sslyze.lock is the TLS scanner's venv (requirements-sslyze.in).
lock: $(STAMP)
	$(BIN)/uv pip compile -q --python-version 3.11 --extra dev --generate-hashes \
		--output-file requirements.lock pyproject.toml
	$(BIN)/uv pip compile -q --python-version 3.11 --generate-hashes \
		--constraint requirements.lock --output-file requirements-runtime.lock pyproject.toml
	$(BIN)/uv pip compile -q --python-version 3.11 --generate-hashes \
		--output-file requirements-sslyze.lock requirements-sslyze.in

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache
