# Two commands do everything on a fresh Debian 12 machine: `make run`, `make test`.
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PKGS   := config storage trustspace directory_ldap accounts mail mailstore smtp imap web gateway

.PHONY: run test fuzz bench bench-blobs bench-smtp bench-imap bench-directory lint clean setup setup-bench

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/bootstrap.sh
	./scripts/bootstrap.sh

run: setup
	$(BIN)/mssante serve

# The suite runs in up to TEST_WORKERS processes (pytest-xdist; fewer on a machine with fewer
# cores): each worker starts its own slapd, PostgreSQL cluster and PKIs on ephemeral ports, and
# a test file runs whole on one worker, so its module fixtures are built once.
# `make test TEST_WORKERS=1` runs it in one worker process.
TEST_WORKERS ?= 2

test: setup
	$(BIN)/python -m pytest -q -n auto --maxprocesses=$(TEST_WORKERS) --dist loadfile

# Coverage-guided fuzzing (atheris) of every parser of outside input, FUZZ_SECONDS each;
# new inputs go to var/fuzz/<target>, crashes to var/fuzz/crash-<target>-*. `make test` runs
# each target for a few seconds and replays the committed corpus (tests/fuzz/corpus).
FUZZ_SECONDS ?= 300
FUZZ_TARGETS ?= imap_parser imap_reader mime_views headers smtp_params smtp_content whitelist \
                extract sections

fuzz: setup
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p var/fuzz/$$t; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  $(BIN)/python -m tests.fuzz.run $$t -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 \
	    -timeout=10 -artifact_prefix=var/fuzz/crash-$$t- var/fuzz/$$t || exit 1; \
	done

lint: setup
	$(BIN)/ruff check $(PKGS) tests bench
	$(BIN)/mypy $(PKGS)

bench: bench-blobs bench-smtp bench-imap bench-directory

# Benchmarks compare with Postfix and Dovecot run privately in the same run.
setup-bench: setup
	./scripts/bootstrap.sh --bench

bench-blobs: setup
	$(BIN)/python bench/blobs.py

bench-smtp: setup-bench
	$(BIN)/python bench/smtp.py

bench-imap: setup-bench
	$(BIN)/python bench/imap.py

bench-directory: setup
	$(BIN)/python bench/directory.py

clean:
	rm -rf $(VENV) var build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
