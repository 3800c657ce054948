"""Item 15: any bytes given as the whitelist give a WhitelistError, and the last good list
stays in force.

expat raises ``LookupError`` (not ``ExpatError``) for an XML declaration naming an unknown
encoding; it escaped the loader, so a refresh failed with a traceback instead of a refusal.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from config import load_settings
from tests.fixtures.whitelist import SAMPLE_DOMAINS, WhitelistServer, whitelist_xml
from trustspace.refresh import TrustSpaceManager, write_atomically
from trustspace.whitelist import WhitelistError, parse_whitelist

pytestmark = pytest.mark.timeout(60)

BAD_DECLARATIONS = [
    b'<?xml version="1.0" encoding="x"?><ListeBlanche/>',
    b'<?xml version="1.0" encoding="base64"?><ListeBlanche/>',
    b'<?xml version="1.0" encoding="\xff"?><ListeBlanche/>',
    b'<?xml version="1.0" encoding="utf-8\x00"?><ListeBlanche/>',
    b'<?xml version="1.0" encoding="utf-32"?><ListeBlanche/>',
]


@pytest.mark.parametrize("data", BAD_DECLARATIONS)
def test_unknown_encoding_is_a_whitelist_error(data: bytes) -> None:
    with pytest.raises(WhitelistError) as err:
        parse_whitelist(data, source="test")
    assert err.value.reason == "malformed"


async def test_file_with_unknown_encoding_keeps_the_last_good_list(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, env={}, overrides={"smtp": {"relay_port": 0}})
    write_atomically(settings.trustspace_file, whitelist_xml(["a.mssante.fr"]))
    manager = TrustSpaceManager(settings)
    assert (await manager.load_initial()).ok
    before = manager.current
    settings.trustspace_file.write_bytes(BAD_DECLARATIONS[0])
    result = await manager.refresh()
    assert not result.ok and result.reason == "malformed"
    assert manager.current is before and manager.current.contains("a.mssante.fr")


async def test_download_with_unknown_encoding_keeps_the_last_good_list(
    tmp_path: Path, whitelist_https: WhitelistServer
) -> None:
    settings = load_settings(data_dir=tmp_path, env={}, overrides={
        "smtp": {"relay_port": 0},
        "trustspace": {"url": whitelist_https.url, "ca_file": str(whitelist_https.ca.ca_file),
                       "fetch_timeout": 5},
    })
    manager = TrustSpaceManager(settings)
    assert (await manager.refresh()).ok
    before = manager.current
    whitelist_https.body = BAD_DECLARATIONS[0]
    result = await manager.refresh()
    assert not result.ok and result.reason == "malformed"
    assert manager.current is before


async def test_content_length_with_unicode_digits_is_not_trusted(
    tmp_path: Path, whitelist_https: WhitelistServer
) -> None:
    """``Content-Length: ²`` passed isdigit() and broke int(); it is now just ignored."""
    settings = load_settings(data_dir=tmp_path, env={}, overrides={
        "smtp": {"relay_port": 0},
        "trustspace": {"url": whitelist_https.url, "ca_file": str(whitelist_https.ca.ca_file),
                       "fetch_timeout": 5},
    })
    whitelist_https.content_length = "\u00b2"
    manager = TrustSpaceManager(settings)
    result = await asyncio.wait_for(manager.refresh(), 20)
    assert result.ok, result
    assert manager.current.domains >= SAMPLE_DOMAINS
