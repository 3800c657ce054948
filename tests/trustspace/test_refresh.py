"""Refreshing the trust space from a real loopback HTTPS server and from the local file."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from config import Settings, load_settings
from tests.fixtures.whitelist import (
    SAMPLE_DOMAINS,
    SAMPLE_WHITELIST,
    WhitelistServer,
    make_test_ca,
    whitelist_xml,
)
from trustspace.refresh import (
    TrustSpaceManager,
    ensure_default_whitelist,
    last_good_path,
    write_atomically,
)
from trustspace.whitelist import WhitelistError


def make_settings(tmp_path: Path, **trustspace: Any) -> Settings:
    overrides: dict[str, dict[str, Any]] = {"smtp": {"relay_port": 0}}
    if trustspace:
        overrides["trustspace"] = trustspace
    return load_settings(data_dir=tmp_path, env={}, overrides=overrides)


def url_settings(tmp_path: Path, server: WhitelistServer, **extra: Any) -> Settings:
    return make_settings(
        tmp_path, url=server.url, ca_file=str(server.ca.ca_file), fetch_timeout=5, **extra
    )


# -- HTTPS --------------------------------------------------------------------------------------


async def test_https_refresh_loads_the_list_and_keeps_a_last_good_copy(
    tmp_path: Path, whitelist_https: WhitelistServer
) -> None:
    settings = url_settings(tmp_path, whitelist_https)
    manager = TrustSpaceManager(settings)
    result = await manager.load_initial()
    assert result.ok and result.count == 7 and result.source == whitelist_https.url
    assert manager.current.domains == SAMPLE_DOMAINS
    assert manager.current.contains("mssante.test")  # local domain always in
    assert last_good_path(settings).read_bytes() == SAMPLE_WHITELIST


async def test_https_server_with_untrusted_certificate_is_refused(
    tmp_path: Path, whitelist_https: WhitelistServer
) -> None:
    other = make_test_ca(tmp_path / "other", "other")
    settings = make_settings(tmp_path, url=whitelist_https.url, ca_file=str(other.ca_file))
    manager = TrustSpaceManager(settings)
    result = await manager.refresh()
    assert not result.ok
    assert result.reason == "untrusted"
    assert "certificate" in result.detail
    assert not manager.loaded
    assert not last_good_path(settings).exists()


async def test_anchors_from_tls_section_are_used_by_default(
    tmp_path: Path, whitelist_https: WhitelistServer
) -> None:
    settings = load_settings(
        data_dir=tmp_path, env={},
        overrides={"trustspace": {"url": whitelist_https.url},
                   "tls": {"anchors": (str(whitelist_https.ca.ca_file),)}},
    )
    assert (await TrustSpaceManager(settings).refresh()).ok


async def test_missing_anchor_file_is_refused(
    tmp_path: Path, whitelist_https: WhitelistServer
) -> None:
    # Embedded mode defaults to pki/ca.pem, which does not exist yet here.
    settings = make_settings(tmp_path, url=whitelist_https.url)
    result = await TrustSpaceManager(settings).refresh()
    assert not result.ok and result.reason == "fetch"
    assert "bad trust anchors" in result.detail


async def test_plain_http_url_is_refused(tmp_path: Path, whitelist_https: WhitelistServer) -> None:
    settings = make_settings(
        tmp_path, url=whitelist_https.url.replace("https:", "http:"),
        ca_file=str(whitelist_https.ca.ca_file),
    )
    result = await TrustSpaceManager(settings).refresh()
    assert not result.ok and "not an https:// URL" in result.detail


@pytest.mark.parametrize(
    ("body", "status", "truncate", "reason"),
    [
        (b"", 200, None, "empty"),
        (SAMPLE_WHITELIST, 200, 300, "truncated"),
        (SAMPLE_WHITELIST.replace(b"listeblanche.mssante.fr", b"example.org"), 200, None,
         "namespace"),
        (whitelist_xml([]), 200, None, "empty"),
        (b"<html>maintenance</html>", 503, None, "fetch"),
    ],
    ids=["empty", "truncated", "wrong-namespace", "no-domain", "http-503"],
)
async def test_bad_download_is_refused_and_previous_list_kept(
    tmp_path: Path,
    whitelist_https: WhitelistServer,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    status: int,
    truncate: int | None,
    reason: str,
) -> None:
    settings = url_settings(tmp_path, whitelist_https)
    manager = TrustSpaceManager(settings)
    assert (await manager.refresh()).ok
    before = manager.current
    whitelist_https.body, whitelist_https.status = body, status
    whitelist_https.truncate_to = truncate
    with caplog.at_level(logging.WARNING, logger="mssante.trustspace"):
        result = await manager.refresh()
    assert not result.ok and result.reason == reason
    assert manager.current is before
    assert last_good_path(settings).read_bytes() == SAMPLE_WHITELIST
    lines = [r.getMessage() for r in caplog.records]
    assert any(
        line.startswith("event=trustspace_refresh_refused") and f"reason={reason}" in line
        for line in lines
    ), lines
    assert all("\n" not in line for line in lines)


async def test_start_up_uses_last_good_copy_when_url_does_not_answer(
    tmp_path: Path, whitelist_https: WhitelistServer
) -> None:
    settings = url_settings(tmp_path, whitelist_https)
    assert (await TrustSpaceManager(settings).load_initial()).ok
    assert whitelist_https._httpd is not None
    whitelist_https._httpd.shutdown()
    whitelist_https._httpd.server_close()
    restarted = TrustSpaceManager(settings)
    result = await restarted.load_initial()
    assert result.ok and result.source == str(last_good_path(settings))
    assert restarted.current.domains == SAMPLE_DOMAINS


async def test_start_up_with_nothing_valid_raises_naming_what_was_tried(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.trustspace_file.write_bytes(b"<truncated")
    with pytest.raises(WhitelistError) as err:
        await TrustSpaceManager(settings).load_initial()
    assert str(settings.trustspace_file) in str(err.value)


# -- local file ---------------------------------------------------------------------------------


async def test_file_replaced_by_invalid_one_while_running_keeps_old_list(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, file_check_interval=0.05)
    write_atomically(settings.trustspace_file, whitelist_xml(["a.mssante.fr", "b.mssante.fr"]))
    manager = TrustSpaceManager(settings)
    assert (await manager.load_initial()).ok
    stop = asyncio.Event()
    task = asyncio.create_task(manager.run_periodic(stop))
    try:
        settings.trustspace_file.write_bytes(b"<ListeBlanche xmlns='https://listeblanche.mss")
        await asyncio.sleep(0.3)
        assert manager.current.domains == {"a.mssante.fr", "b.mssante.fr"}
        write_atomically(settings.trustspace_file, whitelist_xml(["c.mssante.fr"]))
        for _ in range(50):
            await asyncio.sleep(0.05)
            if manager.current.contains("c.mssante.fr"):
                break
        assert manager.current.domains == {"c.mssante.fr"}
        assert not manager.current.contains("a.mssante.fr")
    finally:
        stop.set()
        await asyncio.wait_for(task, 2)


async def test_file_refresh_reports_refusal(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.trustspace_file.write_bytes(b"")
    result = await TrustSpaceManager(settings).refresh()
    assert not result.ok and result.reason == "empty"


def test_embedded_default_whitelist_has_the_local_domains(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path, env={}, overrides={"gateway": {"domains": ("mssante.test", "cœur.test")}}
    )
    path = ensure_default_whitelist(settings)
    assert path == settings.trustspace_file
    text = path.read_text(encoding="utf-8")
    assert "cœur.test" in text and "mssante.test" in text
    assert ensure_default_whitelist(settings) is None  # never overwritten


def test_production_mode_writes_no_default(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path, env={},
        overrides={
            "gateway": {"mode": "production"},
            "tls": {"cert_file": "s.pem", "key_file": "s.key", "anchors": ("ca.pem",)},
        },
    )
    assert ensure_default_whitelist(settings) is None
    assert not settings.trustspace_file.exists()


def test_write_atomically_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "x.xml"
    write_atomically(target, b"one")
    write_atomically(target, b"two")
    assert target.read_bytes() == b"two"
    assert os.listdir(target.parent) == ["x.xml"]
