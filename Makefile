# Two commands do everything on a fresh Debian 12 machine: `make run`, `make test`.
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PKGS   := config storage trustspace directory_ldap accounts mail smtp imap web gateway

.PHONY: run test bench bench-blobs bench-smtp bench-imap bench-directory lint clean setup

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

bench: bench-blobs

bench-blobs: setup
	$(BIN)/python bench/blobs.py

clean:
	rm -rf $(VENV) var build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
