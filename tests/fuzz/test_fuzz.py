"""The fuzz targets inside ``make test``: the committed corpus replayed, then a short
coverage-guided run of each target.

The replay is the regression test of every crash fuzzing ever found (its input is committed
under ``tests/fuzz/corpus/<target>/regression-*``) and of every seed. The short run
(``MSSANTE_FUZZ_SECONDS``, 3 s by default) starts ``tests/fuzz/run.py`` in a child process,
because libFuzzer ends the process it runs in; a crash fails the test with the input's path
and the traceback. ``make fuzz`` runs the same targets for as long as asked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.targets import CORPUS, TARGETS

ROOT = Path(__file__).resolve().parents[2]
SECONDS = int(os.environ.get("MSSANTE_FUZZ_SECONDS", "3"))

CASES = sorted((name, path) for name in TARGETS for path in (CORPUS / name).iterdir())


def test_every_target_has_seeds() -> None:
    for name in TARGETS:
        assert any((CORPUS / name).iterdir()), f"tests/fuzz/corpus/{name} has no seed"


@pytest.mark.parametrize(("name", "path"), CASES, ids=[f"{n}/{p.name}" for n, p in CASES])
def test_corpus_replays_without_crash(name: str, path: Path) -> None:
    TARGETS[name](path.read_bytes())


@pytest.mark.timeout(SECONDS * 10 + 60)
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_short_fuzz_run(name: str, tmp_path: Path) -> None:
    import atheris  # noqa: F401  - installed by the set-up (pyproject's test extras)
    found = tmp_path / "new"
    found.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        str(ROOT), os.environ.get("PYTHONPATH", "")]))}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.run", name, f"-max_total_time={SECONDS}",
         "-rss_limit_mb=1024", "-timeout=10", f"-artifact_prefix={tmp_path}/", str(found)],
        cwd=ROOT, env=env, capture_output=True, timeout=SECONDS * 10 + 30, check=False,
    )
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    output = proc.stderr.decode(errors="replace")[-4000:]
    assert proc.returncode == 0 and not crashes, (
        f"fuzz target {name} crashed; input saved as {crashes} in {tmp_path}; add it to "
        f"tests/fuzz/corpus/{name}/regression-<what> with a test that fails before the fix.\n"
        + output
    )
