"""SEARCH criteria (RFC 9051 §6.4.4): the key types live in :mod:`mailstore.searchkeys`,
below the front-ends, so the webmail builds and evaluates the same keys; the parser and
the commands keep importing them from here."""

from __future__ import annotations

from mailstore.searchkeys import (
    NumberSet,
    SearchAge,
    SearchAll,
    SearchAnd,
    SearchDate,
    SearchFlag,
    SearchHeader,
    SearchKey,
    SearchModseq,
    SearchNot,
    SearchObjectId,
    SearchOr,
    SearchSaveDate,
    SearchSequence,
    SearchSize,
    SearchText,
)

__all__ = [
    "NumberSet",
    "SearchAge",
    "SearchAll",
    "SearchAnd",
    "SearchDate",
    "SearchFlag",
    "SearchHeader",
    "SearchKey",
    "SearchModseq",
    "SearchNot",
    "SearchObjectId",
    "SearchOr",
    "SearchSaveDate",
    "SearchSequence",
    "SearchSize",
    "SearchText",
]
