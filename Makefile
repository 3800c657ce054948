# Two commands do everything on a fresh Debian 12 machine: `make run`, `make test`.
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PKGS   := config storage trustspace directory_ldap accounts mail smtp imap web gateway

.PHONY: run test bench bench-blobs bench-smtp bench-imap bench-directory lint clean setup setup-bench

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/bootstrap.sh
	./scripts/bootstrap.sh

run: setup
	$(BIN)/mssante serve

test: setup
	$(BIN)/python -m pytest -q

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
