"""The protocol-free rules of mailstore/sorting.py: base subjects (RFC 5256 §2.1) and the
collations (RFC 4790 §9.2 i;ascii-casemap, RFC 5051 i;unicode-casemap)."""

from __future__ import annotations

import pytest

from mailstore.sorting import ascii_casemap, base_subject, unicode_casemap


@pytest.mark.parametrize(("subject", "base", "refwd"), [
    ("Re: Bilan", "Bilan", True),
    ("bilan (fwd)", "bilan", False),  # step 2: subj-trailer
    ("Bilan  (FWD) (fwd) ", "Bilan", False),  # step 2 repeated
    ("  RE:  Re[2]: a \t  b ", "a b", True),  # step 1 white space, subj-refwd with a blob
    ("Fw: Fwd:FW: x", "x", True),  # "fw" ["d"], any case
    ("re : x", "x", True),  # *WSP before the colon
    ("[HOPITAL] Compte rendu", "Compte rendu", False),  # step 4
    ("[a] [b] c", "c", False),  # steps 4 and 5
    ("[xyz]", "[xyz]", False),  # step 4 keeps a blob that is the whole subject
    ("[SPAM] Re: y", "y", True),  # subj-leader = *subj-blob subj-refwd
    ("Fwd: [fwd: COMPTE RENDU]", "COMPTE RENDU", True),  # step 6
    ("[fwd: Re: hello (fwd)]", "hello", True),  # step 6 then again from step 2
    ("Re:", "", True),
    ("R\u00e9ponse", "R\u00e9ponse", False),  # "Ré" is not "Re:"
    ("Reunion: ordre du jour", "Reunion: ordre du jour", False),
    (None, "", False),
])
def test_base_subject(subject: str | None, base: str, refwd: bool) -> None:
    """RFC 5256 §2.1 steps 1-6, and whether the subject was a reply or forward."""
    assert base_subject(subject) == (base, refwd)


def test_collations() -> None:
    """i;ascii-casemap folds a-z only (RFC 4790 §9.2); i;unicode-casemap titlecases and
    decomposes (RFC 5051 §2), so "école", "ÉCOLE" and "E" + combining acute + "cole" are
    equal."""
    assert ascii_casemap("abc-é") == "ABC-é"
    assert ascii_casemap("école") != ascii_casemap("ÉCOLE")
    assert unicode_casemap("école") == unicode_casemap("ÉCOLE") == unicode_casemap("E\u0301cole")
    assert unicode_casemap("ecole") < unicode_casemap("école")
    assert unicode_casemap("\u2460") == unicode_casemap("1")  # NFKD: compatibility forms
