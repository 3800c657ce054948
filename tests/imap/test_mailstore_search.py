"""The search of :mod:`mailstore.search` called as the webmail calls it: no IMAP session,
the same answers as IMAP SEARCH (RFC 9051 §6.4.4) over the folder's current messages."""

from __future__ import annotations

from mailstore.search import (
    SearchAnd,
    SearchFlag,
    SearchHeader,
    SearchNot,
    SearchOr,
    SearchSequence,
    SearchText,
    search_folder,
)
from mailstore.sorting import SortKey, sort_folder
from mailstore.threads import thread_folder
from tests.fixtures.imap import ALICE, ImapEnv, message


class _Numbers:
    """A number set as the webmail would give one (no ``*``, no ``$``)."""

    saved = False

    def __init__(self, *values: int) -> None:
        self.values = set(values)

    def contains(self, value: int, max_value: int) -> bool:
        return value in self.values


async def test_search_folder_without_a_session(imap_env: ImapEnv) -> None:
    """Header, body, flag, boolean and number criteria over a folder, without IMAP."""
    await imap_env.deliver(message(1, subject="Bilan sanguin"))
    await imap_env.deliver(message(2, body="Résultats normaux\r\n"), flags=("\\Seen",))
    await imap_env.deliver(message(3, subject="Bilan cardiaque"))
    store = imap_env.service.context.store
    folder = await imap_env.folder_id(ALICE, "INBOX")
    subject = SearchHeader("subject", "bilan", envelope=True)
    assert await search_folder(store, folder, subject) == [1, 3]
    assert await search_folder(store, folder, SearchText("résultats", body_only=True)) == [2]
    assert await search_folder(store, folder, SearchFlag("\\Seen", present=False)) == [1, 3]
    assert await search_folder(store, folder, SearchOr(
        SearchHeader("subject", "cardiaque", envelope=True), SearchFlag("\\Seen"))) == [2, 3]
    assert await search_folder(store, folder, SearchAnd((
        SearchNot(SearchFlag("\\Seen")), SearchSequence(_Numbers(1, 2), uid=True)))) == [1]
    # Sequence numbers count the folder's messages in UID order; nothing is \Recent.
    assert await search_folder(store, folder, SearchSequence(_Numbers(3), uid=False)) == [3]
    assert await search_folder(store, folder, SearchFlag("\\Recent")) == []


async def test_sort_and_thread_folder_without_a_session(imap_env: ImapEnv) -> None:
    """RFC 5256 SORT and THREAD REFERENCES as the webmail calls them (mailstore/)."""
    await imap_env.deliver(message(1, subject="Bilan"))
    await imap_env.deliver(message(2, subject="Re: Bilan",
                                   extra="References: <m1@mssante.test>\r\n"))
    await imap_env.deliver(message(3, subject="Analyse"))
    store = imap_env.service.context.store
    folder = await imap_env.folder_id(ALICE, "INBOX")
    assert await sort_folder(store, folder, [SortKey("SUBJECT")]) == [3, 1, 2]
    assert await sort_folder(store, folder, [SortKey("SUBJECT", reverse=True)],
                             SearchNot(SearchHeader("subject", "re:", envelope=True))) == [1, 3]
    roots = await thread_folder(store, folder, "REFERENCES")
    assert [(r.uid, [c.uid for c in r.children]) for r in roots] == [(1, [2]), (3, [])]
