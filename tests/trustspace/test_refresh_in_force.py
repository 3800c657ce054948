"""One trust space for the CLI and the running gateway (issue 14, bug 3).

``mssante trustspace refresh`` from the published URL must be what ``check`` and ``show``
answer afterwards, ``show`` must not rewrite the last good copy with the older local file,
and a running gateway must adopt a refresh done from the command line within seconds.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from click.testing import CliRunner

from gateway.commands.trustspace import command
from gateway.context import CliContext
from tests.fixtures.gateway import gateway_settings, running_gateway
from tests.fixtures.whitelist import SAMPLE_WHITELIST, WhitelistServer, whitelist_xml
from trustspace.refresh import last_good_path

NEW_DOMAIN = "nouveau-centre.mssante.fr"


def run(data_dir: Path, *args: str) -> tuple[int, str, str]:
    obj = CliContext(config_file=None, data_dir=data_dir)
    result = CliRunner().invoke(command, list(args), obj=obj)
    return result.exit_code, result.stdout, result.stderr


def url_config(data_dir: Path, server: WhitelistServer, **extra: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    lines = [f'url = "{server.url}"', f'ca_file = "{server.ca.ca_file}"',
             *(f"{k} = {v}" for k, v in extra.items())]
    (data_dir / "mssante.toml").write_text("[trustspace]\n" + "\n".join(lines) + "\n")


def test_check_answers_from_the_list_refresh_adopted(
    tmp_path: Path, whitelist_https: WhitelistServer
) -> None:
    url_config(tmp_path, whitelist_https)
    assert run(tmp_path, "show")[0] == 0  # embedded default: the local domain only
    whitelist_https.body = whitelist_xml(["medecin.mssante.fr", NEW_DOMAIN])
    code, out, _ = run(tmp_path, "refresh")
    assert code == 0 and "2 domains" in out
    code, out, _ = run(tmp_path, "check", NEW_DOMAIN)
    assert code == 0, out
    assert f"{NEW_DOMAIN} is in the MSSanté trust space" in out


def test_show_and_check_do_not_rewrite_the_last_good_copy(
    tmp_path: Path, whitelist_https: WhitelistServer
) -> None:
    url_config(tmp_path, whitelist_https)
    assert run(tmp_path, "refresh")[0] == 0
    last_good = tmp_path / "trustspace.last-good.xml"
    assert last_good.read_bytes() == SAMPLE_WHITELIST
    before = last_good.stat().st_mtime_ns
    code, out, _ = run(tmp_path, "show")
    assert code == 0 and "domains: 7" in out
    assert run(tmp_path, "check", "medecin.mssante.fr")[0] == 0
    assert last_good.read_bytes() == SAMPLE_WHITELIST
    assert last_good.stat().st_mtime_ns == before


async def test_running_gateway_adopts_a_command_line_refresh_within_seconds(
    tmp_path: Path, whitelist_https: WhitelistServer
) -> None:
    data_dir = tmp_path / "gw"
    ts = {"url": whitelist_https.url, "ca_file": str(whitelist_https.ca.ca_file)}
    settings = gateway_settings(data_dir, trustspace=ts)
    url_config(data_dir, whitelist_https, file=f'"{settings.trustspace_file}"',
               file_check_interval="0.5")
    async with running_gateway(settings) as gw:
        assert gw.gw.trust is not None
        assert not gw.gw.trust.current.contains(NEW_DOMAIN)
        whitelist_https.body = whitelist_xml(["medecin.mssante.fr", NEW_DOMAIN])
        code, out, err = await asyncio.to_thread(run, data_dir, "refresh")
        assert code == 0, err
        deadline = time.monotonic() + 10
        while not gw.gw.trust.current.contains(NEW_DOMAIN):
            assert time.monotonic() < deadline, "the running gateway kept the old list"
            await asyncio.sleep(0.1)
        assert gw.gw.trust.current.source == str(last_good_path(settings))
        assert not gw.gw.trust.current.contains("ght-sud.mssante.fr")
