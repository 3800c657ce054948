"""Key file creation, permissions, and the refusal to replace a lost key."""

from __future__ import annotations

import json
import stat

import pytest

from config.settings import Settings
from storage.database import open_database
from storage.errors import KeyFileMissing, KeyringError
from storage.keys import load_or_create_keyring


def test_key_file_created_0600(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "sub" / "master.key"
    ring = load_or_create_keyring(path, may_create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["format"] == "mssante-keyring/1"
    assert ring.active_key_id == doc["master_keys"][-1]["id"]
    again = load_or_create_keyring(path, may_create=True)
    assert again.master_keys == ring.master_keys
    assert doc["master_keys"][0]["key"] not in repr(ring)  # no key material in logs


def test_missing_key_file_not_created_when_forbidden(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(KeyFileMissing, match=r"key file .*master\.key does not exist"):
        load_or_create_keyring(tmp_path / "master.key", may_create=False)
    assert not (tmp_path / "master.key").exists()


def test_key_file_readable_by_others_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "master.key"
    load_or_create_keyring(path, may_create=True)
    path.chmod(0o644)
    with pytest.raises(KeyringError, match=r"mode 0644\); run: chmod 600"):
        load_or_create_keyring(path, may_create=True)


def test_malformed_key_file_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "master.key"
    path.write_text('{"format": "mssante-keyring/1", "master_keys": [{"id": "x", "key": "AA=="}]}')
    path.chmod(0o600)
    with pytest.raises(KeyringError, match="not a valid key file: master key 'x' is not 32"):
        load_or_create_keyring(path, may_create=True)


async def test_open_database_creates_key_and_reopens(db_settings: Settings) -> None:
    db = await open_database(db_settings, may_create_key=True)
    first = db.keyring.active_key_id
    await db.close()
    assert stat.S_IMODE(db_settings.key_file.stat().st_mode) == 0o600
    db = await open_database(db_settings, may_create_key=False)
    try:
        assert db.keyring.active_key_id == first
    finally:
        await db.close()


async def test_missing_key_file_with_blobs_refused(db_settings: Settings) -> None:
    db = await open_database(db_settings, may_create_key=True)
    async with db.begin() as conn:
        await db.blobs.put(conn, b"an encrypted body")
    await db.close()
    db_settings.key_file.unlink()
    with pytest.raises(KeyFileMissing, match="database holds encrypted message bodies"):
        await open_database(db_settings, may_create_key=True)
    assert not db_settings.key_file.exists()  # never replaced by a fresh key


async def test_missing_key_file_of_a_used_database_refused(db_settings: Settings) -> None:
    """Even without bodies, a used database has proofs signed with the key file's signing
    key and may have nodes using its master key: a fresh key file is refused, naming the
    keys to bring back (storage/key_registry.py)."""
    db = await open_database(db_settings, may_create_key=True)
    wanted = set(db.keyring.master_keys) | set(db.keyring.signing_keys)
    await db.close()
    db_settings.key_file.unlink()
    with pytest.raises(KeyFileMissing) as refused:
        await open_database(db_settings, may_create_key=True)
    assert all(key_id in str(refused.value) for key_id in wanted)
    assert not db_settings.key_file.exists()


async def test_new_database_creates_its_key_file(db_settings: Settings) -> None:
    db = await open_database(db_settings, may_create_key=True)
    await db.close()
    assert db_settings.key_file.exists()
