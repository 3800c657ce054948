"""Item 15: a number field must hold ASCII digits, everywhere input is read.

``str.isdigit()`` is true for ``²`` and ``¹``, which ``int()`` refuses (ValueError), and
``\\d`` in a ``str`` regular expression matches Arabic-Indic digits, which ``int()`` reads.
Each place that checked digits that way is fed such a value through its real entry point:
the importer must report and skip the row, the SMTP session refuse the command, the
configuration name the value, the command line exit 2.
"""

from __future__ import annotations

import asyncio
import smtplib
from pathlib import Path

import aiosmtplib
import pytest
from click.testing import CliRunner

from config import load_settings
from config.loader import ConfigError
from config.transport import parse_transport
from directory_ldap.entry import DirectoryEntry
from directory_ldap.extract import read_extract
from directory_ldap.queries import word_filter
from gateway.cli import main
from mail.sections import SectionError, parse_section
from smtp.mx import Destination
from smtp.outbound_session import OutboundSession
from tests.fixtures.gateway import RunningGateway

pytestmark = pytest.mark.timeout(60)

SUPERSCRIPT_TWO = "\u00b2"  # isdigit() is True, int() raises
ARABIC_THREE = "\u0663"  # a decimal digit: \d and int() accept it, RFCs do not


def test_extract_row_with_unicode_digit_rank_is_reported_and_skipped(tmp_path: Path) -> None:
    f = tmp_path / "ranked.txt"
    f.write_text("Adresse BAL|Nom d'exercice|Rang de préférence\n"
                 "a.dupont@medecin.mssante.fr|Dupont|1\n"
                 f"b.dupont@medecin.mssante.fr|Dupont|{SUPERSCRIPT_TWO}\n"
                 f"c.dupont@medecin.mssante.fr|Dupont|{ARABIC_THREE}\n"
                 "d.dupont@medecin.mssante.fr|Dupont|2\n", encoding="utf-8")
    extract = read_extract(f)
    assert sorted(extract.rows) == ["a.dupont@medecin.mssante.fr", "d.dupont@medecin.mssante.fr"]
    assert [(b.line, b.reason) for b in extract.bad] == [
        (3, f"invalid preferred rank {SUPERSCRIPT_TWO!r}"),
        (4, f"invalid preferred rank {ARABIC_THREE!r}"),
    ]


def test_directory_entry_with_unicode_digit_rank_reads_as_unranked() -> None:
    entry = DirectoryEntry.from_ldap({
        "mail": [b"x@mssante.test"],
        "mssantePreferredRank": [SUPERSCRIPT_TWO.encode()],
    })
    assert entry.preferred_rank == 0


def test_word_filter_treats_only_ascii_digits_as_postal_codes() -> None:
    assert "postalCode" in word_filter("31")
    assert "postalCode" not in word_filter(SUPERSCRIPT_TWO * 2)


def test_transport_port_with_unicode_digit_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "mssante.toml"
    config.write_text(f'[transport]\n"b.mssante.test" = "mx.b.test:2{SUPERSCRIPT_TWO}"\n',
                      encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(data_dir=tmp_path, config_file=config, env={})
    assert "transport.b.mssante.test" in str(err.value)


@pytest.mark.parametrize("digit", [SUPERSCRIPT_TWO, ARABIC_THREE])
def test_transport_parser_refuses_unicode_digits(digit: str) -> None:
    with pytest.raises(ValueError, match="port must be a number from 1 to 65535"):
        parse_transport(f"mx.b.test:25{digit}")


@pytest.mark.parametrize("spec", [SUPERSCRIPT_TWO, f"1.{SUPERSCRIPT_TWO}", ARABIC_THREE])
def test_section_part_numbers_are_ascii(spec: str) -> None:
    with pytest.raises(SectionError):
        parse_section(spec)


def test_queue_id_with_unicode_digit_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "queue", "show",
                                       SUPERSCRIPT_TWO])
    assert result.exit_code == 2, result.output
    assert f"queue id {SUPERSCRIPT_TWO!r} is not a number" in result.output


async def test_peer_announcing_unicode_digit_size_is_treated_as_unlimited() -> None:
    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 peer.test ESMTP\r\n")
        while line := await reader.readline():
            if line.upper().startswith(b"EHLO"):
                writer.write(f"250-peer.test\r\n250 SIZE 1{SUPERSCRIPT_TWO}\r\n".encode())
            else:
                writer.write(b"221 2.0.0 bye\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(peer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=10)
    try:
        await smtp.connect()
        await smtp.ehlo()
        session = OutboundSession(smtp, Destination("127.0.0.1", port), None)  # type: ignore[arg-type]
        assert session.size_limit is None
    finally:
        smtp.close()
        server.close()


@pytest.mark.parametrize("digit", [SUPERSCRIPT_TWO, ARABIC_THREE])
async def test_bdat_size_with_unicode_digit_is_a_syntax_error(
    gateway: RunningGateway, digit: str
) -> None:
    def run() -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", gateway.submission_port, timeout=30) as client:
            client.starttls(context=gateway.client_context())
            client.login(gateway.demo_address, gateway.demo_password)
            client.mail(gateway.demo_address)
            client.rcpt(gateway.demo_address)
            client.send(f"BDAT {digit} LAST\r\n".encode())
            first = client.getreply()
            return first, client.getreply()

    first, second = await asyncio.to_thread(run)
    assert first == (501, b"5.5.4 Syntax: BDAT chunk-size [LAST]")
    assert second[0] == 421 and b"cannot find the end of the BDAT chunk" in second[1]
