"""Runs one fuzz target under atheris (libFuzzer, coverage-guided).

    python -m tests.fuzz.run TARGET [libFuzzer options] [NEW_CORPUS_DIR]

The committed seeds (``tests/fuzz/corpus/TARGET``) are always read, never written: new
inputs go to the first directory given (``make fuzz`` uses ``var/fuzz/TARGET``), crashes to
``-artifact_prefix``. Only the project's packages are instrumented, so coverage guides the
search through our parsers rather than through the standard library.
"""

from __future__ import annotations

import sys

PACKAGES = ["config", "storage", "trustspace", "directory_ldap", "accounts", "mail", "smtp",
            "imap", "web", "gateway"]


def main(argv: list[str]) -> None:
    import atheris

    if len(argv) < 2:
        sys.exit("usage: python -m tests.fuzz.run TARGET [libFuzzer options] [CORPUS_DIR]")
    name, rest = argv[1], argv[2:]
    with atheris.instrument_imports(include=PACKAGES):
        from tests.fuzz.targets import CORPUS, TARGETS
    if name not in TARGETS:
        sys.exit(f"unknown target {name!r}; targets: {', '.join(TARGETS)}")
    seeds = str(CORPUS / name)
    options = [a for a in rest if a.startswith("-")]
    dirs = [a for a in rest if not a.startswith("-")]
    atheris.Setup([argv[0], *options, *dirs, seeds], TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
