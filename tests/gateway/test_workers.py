"""``[gateway] workers = 2``: ``mssante serve`` as a supervisor and two worker processes.

Real processes on ephemeral ports, real clients: messages sent over many connections are
served by both workers and all arrive; a worker killed with SIGKILL under load is started
again and no acknowledged message is lost; SIGTERM lets a transaction in progress finish;
an IDLE session hears of a delivery made by the other worker within 100 ms.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import smtplib
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiosmtplib
import pytest
from sqlalchemy import func, select

from storage.database import open_database
from storage.schema import messages
from tests.fixtures.gateway import ServeProcess

pytestmark = pytest.mark.timeout(240)

START_TIMEOUT = 120.0  # two workers start on a shared, loaded 2-core machine


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[ServeProcess]:
    proc = ServeProcess(tmp_path / "serve", env={"MSSANTE_GATEWAY_WORKERS": "2"})
    try:
        proc.start(timeout=START_TIMEOUT)
        yield proc
    finally:
        proc.kill()


def _log(proc: ServeProcess) -> str:
    return (proc.data_dir / f"serve-{proc.starts}.out").read_text(errors="replace")


def worker_pids(proc: ServeProcess) -> list[int]:
    """The supervisor's children that are workers (slapd is a child too)."""
    assert proc.process is not None
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == proc.process.pid and b"gateway.worker" in cmdline:
            out.append(int(entry.name))
    return sorted(out)


def _context(proc: ServeProcess) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(proc.ca_file))


def _body(proc: ServeProcess, token: str) -> str:
    return (f"From: <{proc.demo_address}>\r\nTo: <{proc.demo_address}>\r\n"
            f"Subject: workers {token}\r\nMessage-ID: <{token}@workers.test>\r\n\r\n"
            + "x" * 2000 + "\r\n")


async def stored_message_ids(proc: ServeProcess) -> dict[str, int]:
    db = await open_database(proc.settings(), may_create_key=False)
    try:
        async with db.read() as conn:
            rows = await conn.execute(
                select(messages.c.message_id_header, func.count())
                .group_by(messages.c.message_id_header))
            return {str(r[0]): int(r[1]) for r in rows}
    finally:
        await db.close()


async def send_one(proc: ServeProcess, token: str) -> None:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=proc.submission_port, timeout=30,
                             start_tls=True, tls_context=_context(proc))
    async with client:
        await client.login(proc.demo_address, proc.demo_password)
        await client.sendmail(proc.demo_address, [proc.demo_address], _body(proc, token))


async def test_messages_reach_both_workers_and_all_arrive(workers: ServeProcess) -> None:
    proc = workers
    assert len(worker_pids(proc)) == 2
    tokens = [uuid.uuid4().hex for _ in range(40)]
    for start in range(0, len(tokens), 10):  # a new connection per message, 10 at a time
        await asyncio.gather(*(send_one(proc, t) for t in tokens[start:start + 10]))
    stored = await stored_message_ids(proc)
    assert all(stored.get(f"<{t}@workers.test>") == 1 for t in tokens)
    log = _log(proc)
    served_by = set(re.findall(r"event=smtp_stored .* worker=(\d)", log))
    assert served_by == {"0", "1"}, f"one worker served everything: {served_by}"
    # The supervisor and each worker set their start-up heap aside (gateway/heap.py).
    frozen = [int(n) for n in re.findall(r"event=heap_settled .*frozen_objects=(\d+)", log)]
    assert len(frozen) == 3 and min(frozen) > 50_000, frozen
    # /metrics (served by the supervisor) counts what both workers accepted.
    from bench.smtp import accepted_by_metrics

    assert await asyncio.to_thread(accepted_by_metrics, proc) == len(tokens)


class Load:
    def __init__(self) -> None:
        self.acked: set[str] = set()
        self.uncertain: set[str] = set()
        self.errors = 0
        self.stop = False


async def sender(proc: ServeProcess, load: Load) -> None:
    """New connections one after the other, each sending a few messages, until stopped."""
    while not load.stop:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=proc.submission_port,
                                 timeout=30, start_tls=True, tls_context=_context(proc))
        try:
            await client.connect()
            await client.login(proc.demo_address, proc.demo_password)
            for _ in range(3):
                token = uuid.uuid4().hex
                load.uncertain.add(token)
                await client.sendmail(proc.demo_address, [proc.demo_address],
                                      _body(proc, token))
                load.uncertain.discard(token)
                load.acked.add(token)
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            load.errors += 1  # the session's worker was killed under it
        finally:
            client.close()


async def test_killed_worker_is_restarted_and_nothing_acknowledged_is_lost(
    workers: ServeProcess,
) -> None:
    proc = workers
    load = Load()
    tasks = [asyncio.create_task(sender(proc, load)) for _ in range(10)]
    deadline = time.monotonic() + 60
    while len(load.acked) < 40 and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    victim = worker_pids(proc)[0]
    os.kill(victim, signal.SIGKILL)
    killed_at = len(load.acked)
    # the survivor keeps serving while the victim is replaced
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        pids = worker_pids(proc)
        if len(pids) == 2 and victim not in pids and _log(proc).count("worker_ready") >= 3:
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError("the killed worker was not started again:\n" + _log(proc)[-3000:])
    target = len(load.acked) + 30
    deadline = time.monotonic() + 60
    while len(load.acked) < target and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    load.stop = True
    await asyncio.gather(*tasks)
    assert len(load.acked) > killed_at + 20
    assert "worker_exited" in _log(proc)
    assert proc.stop() == 0
    stored = await stored_message_ids(proc)
    acked = {f"<{t}@workers.test>" for t in load.acked}
    missing = [m for m in acked if stored.get(m, 0) != 1]
    assert not missing, f"{len(missing)} acknowledged messages missing or duplicated"
    uncertain = {f"<{t}@workers.test>" for t in load.uncertain}
    assert set(stored) <= acked | uncertain


def test_sigterm_lets_a_transaction_in_progress_finish(tmp_path: Path) -> None:
    # a grace period a loaded machine cannot overrun (the fixture's is 1 s)
    proc = ServeProcess(tmp_path / "serve", env={"MSSANTE_GATEWAY_WORKERS": "2",
                                                 "MSSANTE_GATEWAY_SHUTDOWN_GRACE": "20"})
    try:
        proc.start(timeout=START_TIMEOUT)
        _sigterm_during_data(proc)
    finally:
        proc.kill()


def _sigterm_during_data(proc: ServeProcess) -> None:
    assert proc.process is not None
    token = uuid.uuid4().hex
    body = _body(proc, token).encode()
    with smtplib.SMTP("127.0.0.1", proc.submission_port, timeout=30) as client:
        client.starttls(context=_context(proc))
        client.login(proc.demo_address, proc.demo_password)
        client.mail(proc.demo_address)
        client.rcpt(proc.demo_address)
        code, _ = client.docmd("DATA")
        assert code == 354
        client.send(body[:100])
        proc.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # the workers stop accepting; this session may finish
        client.send(body[100:] + b".\r\n")
        code, reply = client.getreply()
        assert code == 250, reply
    assert proc.process.wait(timeout=30) == 0
    proc.process = None
    stored = asyncio.run(stored_message_ids(proc))
    assert stored.get(f"<{token}@workers.test>") == 1
    log = _log(proc)
    assert log.count("worker_stopped") == 2, log[-3000:]


async def _idle_session(proc: ServeProcess, ready: asyncio.Event,
                        heard: list[float], workers_seen: list[str]) -> None:
    port = proc.ports["MSSANTE_IMAP_TLS_PORT"]
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=_context(proc),
                                                   server_hostname="127.0.0.1")
    try:
        await reader.readline()
        writer.write(f'a LOGIN "{proc.demo_address}" "{proc.demo_password}"\r\n'.encode())
        while not (await reader.readline()).startswith(b"a "):
            pass
        writer.write(b"b SELECT INBOX\r\n")
        while not (line := await reader.readline()).startswith(b"b "):
            pass
        assert line.startswith(b"b OK"), line
        writer.write(b"c IDLE\r\n")
        assert (await reader.readline()).startswith(b"+")
        ready.set()
        while True:
            line = await reader.readline()
            if not line:
                return
            if line.endswith(b"EXISTS\r\n"):
                heard.append(time.monotonic())
                break
        writer.write(b"DONE\r\n")
        await reader.readline()
    finally:
        writer.close()


async def test_idle_in_one_worker_hears_a_delivery_by_the_other_within_100_ms(
    workers: ServeProcess,
) -> None:
    proc = workers
    sessions = 8
    heard: list[float] = []
    readies = [asyncio.Event() for _ in range(sessions)]
    tasks = [asyncio.create_task(_idle_session(proc, r, heard, [])) for r in readies]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    logins = re.findall(r"event=imap_login .* worker=(\d)", _log(proc))
    assert set(logins) == {"0", "1"}, f"every IDLE session is on one worker: {logins}"
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=proc.submission_port, timeout=30,
                             start_tls=True, tls_context=_context(proc))
    async with client:
        await client.login(proc.demo_address, proc.demo_password)
        await client.mail(proc.demo_address)
        await client.rcpt(proc.demo_address)
        await client.data(_body(proc, uuid.uuid4().hex))
        acked = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert len(heard) == sessions
    slowest = max(heard) - acked
    print(f"RESULT idle_cross_worker_ms={slowest * 1000:.1f} sessions={sessions}")
    assert slowest < 0.1, f"the slowest IDLE session heard after {slowest * 1000:.0f} ms"


def _workers_of_data_dir(proc: ServeProcess) -> list[int]:
    """Worker processes still running on this data directory, whoever their parent."""
    needle = str(proc.data_dir).encode()
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"gateway.worker" in cmdline and needle in cmdline:
                out.append(int(entry.name))
    return out


async def test_killed_supervisor_workers_stop_and_nothing_acknowledged_is_lost(
    workers: ServeProcess,
) -> None:
    proc = workers
    assert proc.process is not None
    load = Load()
    tasks = [asyncio.create_task(sender(proc, load)) for _ in range(10)]
    deadline = time.monotonic() + 60
    while len(load.acked) < 40 and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    os.kill(proc.process.pid, signal.SIGKILL)  # the supervisor alone, not its group
    proc.process.wait(timeout=10)
    proc.process = None
    deadline = time.monotonic() + 60
    while _workers_of_data_dir(proc) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)  # orphaned workers see the end of their link and stop
    assert not _workers_of_data_dir(proc), "workers outlived their supervisor"
    load.stop = True
    await asyncio.gather(*tasks)
    await asyncio.to_thread(proc.start, START_TIMEOUT)  # the same ports again
    token = uuid.uuid4().hex
    await send_one(proc, token)
    assert proc.stop() == 0
    stored = await stored_message_ids(proc)
    acked = {f"<{t}@workers.test>" for t in load.acked} | {f"<{token}@workers.test>"}
    missing = [m for m in acked if stored.get(m, 0) != 1]
    assert not missing, f"{len(missing)} acknowledged messages missing or duplicated"
