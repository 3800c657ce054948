"""The whitelist parser: the published shape, Unicode names, safety and refusals."""

from __future__ import annotations

import pytest

from tests.fixtures.whitelist import SAMPLE_DOMAINS, SAMPLE_WHITELIST, whitelist_xml
from trustspace.whitelist import (
    InvalidDomain,
    WhitelistError,
    build_whitelist_xml,
    normalise_domain,
    parse_whitelist,
    to_unicode,
)


def test_sample_parses_every_domain_and_skips_bad_names() -> None:
    space = parse_whitelist(SAMPLE_WHITELIST, source="sample", local_domains=["mssante.test"])
    assert space.domains == SAMPLE_DOMAINS
    assert space.count == len(space) == 7
    assert space.skipped == ("pas un domaine",)
    assert space.source == "sample"
    assert space.loaded_at.tzinfo is not None


def test_unknown_elements_and_attributes_are_kept_in_the_raw_document() -> None:
    space = parse_whitelist(SAMPLE_WHITELIST, source="sample")
    assert space.raw == SAMPLE_WHITELIST
    assert b"urn:example:future" in space.raw


def test_local_domains_are_always_in() -> None:
    space = parse_whitelist(whitelist_xml(["a.mssante.fr"]), source="t",
                            local_domains=["MSSante.Test"])
    assert space.contains("mssante.test")
    assert space.is_local("MSSANTE.TEST.")
    assert not space.is_local("a.mssante.fr")
    assert "mssante.test" in space.sorted_domains()


@pytest.mark.parametrize(
    "form",
    [
        "ch-exemple.mssante.fr",
        "CH-EXEMPLE.MSSANTE.FR",
        "ch-exemple.mssante.fr.",
        " ch-exemple.mssante.fr ",
    ],
)
def test_lookup_is_case_insensitive_and_ignores_trailing_dot(form: str) -> None:
    space = parse_whitelist(SAMPLE_WHITELIST, source="sample")
    assert space.contains(form)


def test_unicode_in_xml_matches_a_label_in_smtp() -> None:
    space = parse_whitelist(SAMPLE_WHITELIST, source="sample")
    assert space.contains("xn--hpital--hya6g.mssante.fr")
    assert space.contains("HÔPITAL-É.mssante.fr")


def test_a_label_in_xml_matches_unicode_in_smtp() -> None:
    space = parse_whitelist(SAMPLE_WHITELIST, source="sample")
    assert space.contains("pharmacie-île.mssante.fr")


def test_unicode_domains_outside_the_list_are_not_in() -> None:
    space = parse_whitelist(SAMPLE_WHITELIST, source="sample")
    assert not space.contains("hôpital-è.mssante.fr")
    assert not space.contains(normalise_domain("hôpital-è.mssante.fr"))
    assert not space.contains("not a domain")


def test_normalise_and_back_to_unicode() -> None:
    assert normalise_domain("Hôpital-É.MSSante.fr.") == "xn--hpital--hya6g.mssante.fr"
    assert to_unicode("xn--hpital--hya6g.mssante.fr") == "hôpital-é.mssante.fr"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "empty"),
        ("localhost", "two labels"),
        ("a..mssante.fr", None),
        ("-bad.mssante.fr", None),
        ("under_score.fr", None),
        ("ab--cd.fr", None),
        ("xn--zz.fr", None),
        ("user@mssante.fr", "forbidden characters"),
        ("two words.fr", "forbidden characters"),
        ("a" * 64 + ".fr", None),
        ("b" * 250 + ".fr", None),
    ],
)
def test_values_that_are_not_domains_are_refused_with_the_value(
    value: str, why: str | None
) -> None:
    """The message always names the value; the reason wording for labels comes from the
    IDNA implementation in use, so only our own checks are matched word for word."""
    with pytest.raises(InvalidDomain) as err:
        normalise_domain(value)
    assert repr(value) in str(err.value)
    if why is not None:
        assert why in str(err.value)


def test_build_then_parse_round_trips_unicode() -> None:
    doc = build_whitelist_xml(["hôpital-é.mssante.fr", "b.mssante.fr"], operator="mx.test")
    space = parse_whitelist(doc, source="built")
    assert space.domains == {"xn--hpital--hya6g.mssante.fr", "b.mssante.fr"}
    assert "hôpital-é".encode() in doc


# -- refusals -----------------------------------------------------------------------------------


def _refused(data: bytes) -> WhitelistError:
    with pytest.raises(WhitelistError) as err:
        parse_whitelist(data, source="test-source")
    return err.value


def test_empty_document_is_refused() -> None:
    err = _refused(b"   \n")
    assert err.reason == "empty"
    assert "test-source is empty" in str(err)


def test_document_without_domains_is_refused() -> None:
    err = _refused(whitelist_xml([]))
    assert err.reason == "empty"
    assert "lists no domain" in str(err)


def test_document_with_only_bad_names_is_refused() -> None:
    assert _refused(whitelist_xml(["not a domain", "-x-.fr"])).reason == "empty"


@pytest.mark.parametrize("cut", [40, len(SAMPLE_WHITELIST) // 2, len(SAMPLE_WHITELIST) - 20])
def test_truncated_document_is_refused(cut: int) -> None:
    err = _refused(SAMPLE_WHITELIST[:cut])
    assert err.reason == "truncated"
    assert "not well-formed XML" in str(err)


def test_malformed_document_is_refused() -> None:
    err = _refused(b"<ListeBlanche xmlns='https://listeblanche.mssante.fr/schema'><a></b>")
    assert err.reason == "malformed"


def test_wrong_namespace_is_refused() -> None:
    doc = SAMPLE_WHITELIST.replace(
        b"https://listeblanche.mssante.fr/schema", b"https://example.org/other"
    )
    err = _refused(doc)
    assert err.reason == "namespace"
    assert "https://example.org/other" in str(err)


def test_no_namespace_is_refused() -> None:
    err = _refused(b"<ListeBlanche><Domaine><Nom>a.fr</Nom></Domaine></ListeBlanche>")
    assert err.reason == "namespace"
    assert "no namespace" in str(err)


def test_domains_outside_the_namespace_are_not_read() -> None:
    doc = (
        b"<ListeBlanche xmlns='https://listeblanche.mssante.fr/schema'>"
        b"<Domaine><Nom>good.mssante.fr</Nom></Domaine>"
        b"<x:Domaine xmlns:x='urn:other'><x:Nom>evil.example</x:Nom></x:Domaine>"
        b"</ListeBlanche>"
    )
    assert parse_whitelist(doc, source="t").domains == {"good.mssante.fr"}


def test_oversized_document_is_refused() -> None:
    with pytest.raises(WhitelistError) as err:
        parse_whitelist(SAMPLE_WHITELIST, source="t", max_size=100)
    assert err.value.reason == "too_large"


# -- XML attacks -------------------------------------------------------------------------------

XXE_FILE = b"""<?xml version="1.0"?>
<!DOCTYPE ListeBlanche [<!ENTITY xxe SYSTEM "file:///etc/hostname">]>
<ListeBlanche xmlns="https://listeblanche.mssante.fr/schema">
<Domaine><Nom>&xxe;</Nom></Domaine></ListeBlanche>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<ListeBlanche xmlns="https://listeblanche.mssante.fr/schema">
<Domaine><Nom>&lol4;.fr</Nom></Domaine></ListeBlanche>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE ListeBlanche SYSTEM "http://127.0.0.1:1/evil.dtd">
<ListeBlanche xmlns="https://listeblanche.mssante.fr/schema">
<Domaine><Nom>a.mssante.fr</Nom></Domaine></ListeBlanche>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>
<ListeBlanche xmlns="https://listeblanche.mssante.fr/schema">
<Domaine><Nom>a.mssante.fr</Nom></Domaine></ListeBlanche>"""


@pytest.mark.parametrize(
    "doc", [XXE_FILE, BILLION_LAUGHS, EXTERNAL_DTD, PARAMETER_ENTITY],
    ids=["xxe", "billion-laughs", "external-dtd", "parameter-entity"],
)
def test_dtd_and_entities_are_refused(doc: bytes) -> None:
    err = _refused(doc)
    assert err.reason == "dtd"
    assert "DTD or entity" in str(err)


def test_undeclared_entity_is_malformed() -> None:
    doc = (
        b"<ListeBlanche xmlns='https://listeblanche.mssante.fr/schema'>"
        b"<Domaine><Nom>&x;</Nom></Domaine></ListeBlanche>"
    )
    assert _refused(doc).reason == "malformed"
