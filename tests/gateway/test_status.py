"""``mssante status`` against a real ``mssante serve``: all fine (exit 0), then listeners
down once it stops (exit 1, each named)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.fixtures.gateway import ServeProcess


def status(proc: ServeProcess, *args: str) -> tuple[int, str]:
    exe = str(Path(sys.executable).with_name("mssante"))
    result = subprocess.run([exe, "status", *args], env=proc._env(), capture_output=True,
                            text=True, timeout=120)
    return result.returncode, result.stdout + result.stderr


def checks(text: str) -> dict[str, Any]:
    return {c["check"]: c for c in json.loads(text)["checks"]}


def test_status_of_a_running_then_stopped_gateway(serve_process: ServeProcess) -> None:
    serve_process.start(timeout=60)
    code, out = status(serve_process, "--json")
    assert code == 0, out
    found = checks(out)
    listeners = [k for k in found if k.startswith("listener ")]
    assert len(listeners) == 8, listeners
    assert all(found[k]["state"] == "ok" for k in listeners)
    assert found["readiness"]["state"] == "ok"
    assert found["outbound queue"]["detail"] == "empty"
    assert found["server certificate"]["state"] == "ok"
    assert found["trust space"]["state"] == "ok"
    code, out = status(serve_process)
    assert code == 0 and "everything is fine" in out, out

    assert serve_process.stop() == 0
    code, out = status(serve_process, "--json")
    assert code == 1
    found = checks(out)
    assert found["listener IMAP (TLS)"]["state"] == "attention"
    assert "no answer" in found["listener IMAP (TLS)"]["detail"]
    assert "readiness" not in found  # no web listener to ask
    code, out = status(serve_process)
    assert code == 1 and "need attention" in out
