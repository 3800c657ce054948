"""The one error type of the project that already knows its reply.

A policy decision, an SMTP handler or the mail pipeline refuses something by raising a
:class:`Refusal`; the protocol front-end only has to write ``refusal.smtp_reply()`` (or, for
IMAP, the response code and text). Keeping code, enhanced code and sentence together means
no reply string is ever scattered through handlers, and a refusal cannot lose its reason on
its way up (the shape of maddy's ``SMTPError``).
"""

from __future__ import annotations

import re
import unicodedata

_ENHANCED = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")  # RFC 3463 §2: class.subject.detail


def ascii_text(text: str) -> str:
    """``text`` with accents removed and any other non-ASCII character replaced by ``?``."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.encode("ascii", "replace").decode("ascii")


class Refusal(Exception):
    """A refusal with its SMTP reply code, RFC 3463 enhanced code and a readable sentence.

    ``temporary`` follows from the reply code (4xx: the client should retry later, RFC 5321
    §4.2.1). ``imap_code`` is the optional IMAP response code (RFC 9051 §7.1, for example
    ``AUTHENTICATIONFAILED``) so the IMAP server can reuse the same refusals.
    """

    smtp_code: int
    enhanced: str
    text: str
    imap_code: str | None

    def __init__(
        self, smtp_code: int, enhanced: str, text: str, *, imap_code: str | None = None
    ) -> None:
        if not 400 <= smtp_code <= 599:
            raise ValueError(f"a refusal needs a 4xx or 5xx reply code, not {smtp_code}")
        if not _ENHANCED.match(enhanced) or enhanced[0] != str(smtp_code)[0]:
            # RFC 3463 §3.1: the class digit of the enhanced code matches the reply class.
            raise ValueError(f"enhanced code {enhanced!r} does not match reply code {smtp_code}")
        # One line only: a CR or LF in the text would let a value inject a reply line.
        clean = " ".join(text.split())
        if not clean:
            raise ValueError("a refusal needs a sentence a person understands")
        super().__init__(f"{smtp_code} {enhanced} {clean}")
        self.smtp_code = smtp_code
        self.enhanced = enhanced
        self.text = clean
        self.imap_code = imap_code

    @property
    def temporary(self) -> bool:
        """True for 4xx replies: the same request may succeed later."""
        return 400 <= self.smtp_code < 500

    def smtp_reply(self, *, utf8: bool = False) -> str:
        """The reply line without CRLF, e.g. ``550 5.7.1 example.org is not in ...``.

        Reply text is ASCII (RFC 5321 §4.2) unless the session negotiated SMTPUTF8
        (RFC 6531 §3.7.4.2), so by default accents are dropped ("MSSanté" → "MSSante");
        pass ``utf8=True`` when the client announced SMTPUTF8.
        """
        # RFC 2034 §3: the enhanced code follows the reply code, separated by one space.
        text = self.text if utf8 else ascii_text(self.text)
        return f"{self.smtp_code} {self.enhanced} {text}"

    def __repr__(self) -> str:
        return f"Refusal({self.smtp_code}, {self.enhanced!r}, {self.text!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Refusal):
            return NotImplemented
        return (self.smtp_code, self.enhanced, self.text, self.imap_code) == (
            other.smtp_code,
            other.enhanced,
            other.text,
            other.imap_code,
        )

    def __hash__(self) -> int:
        return hash((self.smtp_code, self.enhanced, self.text, self.imap_code))

    # -- the common refusals, so their wording is the same everywhere ----------------------

    @classmethod
    def not_in_trust_space(cls, domain: str) -> Refusal:
        """A correspondent's domain is absent from the MSSanté whitelist."""
        return cls(550, "5.7.1", f"{domain} is not in the MSSanté trust space")

    @classmethod
    def relay_denied(cls, domain: str) -> Refusal:
        """An operator asked us to relay to a domain we do not serve (never an open relay)."""
        return cls(
            550, "5.7.1", f"relay denied: {domain} is not a domain of this operator"
        )

    @classmethod
    def unknown_mailbox(cls, address: str) -> Refusal:
        """RFC 3463 §3.2 X.1.1: bad destination mailbox address."""
        return cls(550, "5.1.1", f"mailbox {address} does not exist here")

    @classmethod
    def mailbox_disabled(cls, address: str) -> Refusal:
        """RFC 3463 §3.3 X.2.1: mailbox disabled, not accepting messages."""
        return cls(550, "5.2.1", f"mailbox {address} is suspended and does not accept mail")

    @classmethod
    def starttls_required(cls) -> Refusal:
        """RFC 3207 §4: a command other than NOOP, EHLO, STARTTLS or QUIT before STARTTLS."""
        return cls(530, "5.7.0", "must issue a STARTTLS command first")

    @classmethod
    def certificate_required(cls) -> Refusal:
        """The relaying operator did not authenticate with a client certificate."""
        return cls(
            530,
            "5.7.0",
            "a client certificate of the health PKI is required to relay mail between "
            "MSSanté operators",
        )

    @classmethod
    def certificate_refused(cls, reason: str) -> Refusal:
        """The peer's certificate was presented but could not be trusted."""
        return cls(550, "5.7.1", f"your client certificate was refused: {reason}")

    @classmethod
    def own_domain_sender(cls, domain: str, where: str) -> Refusal:
        """A relaying operator used one of our own domains as sender (forging our users).

        ``where`` completes the sentence: "as envelope sender (MAIL FROM)", "in the From
        header".
        """
        return cls(
            550,
            "5.7.1",
            f"{domain} is a domain of this operator: another operator may not use it {where}; "
            "mail of its users is only sent through this operator",
        )

    @classmethod
    def sender_not_allowed(cls, address: str, authenticated: str) -> Refusal:
        """RFC 3463 §3.8 X.7.1: the authenticated user may not send as this address."""
        return cls(
            553,
            "5.7.1",
            f"{authenticated} is not allowed to send as {address or '<>'}",
        )

    @classmethod
    def bad_sender_syntax(cls, value: str, why: str) -> Refusal:
        """RFC 3463 §3.2 X.1.7: bad sender's mailbox address syntax."""
        return cls(553, "5.1.7", f"sender address {value!r} is not valid: {why}")

    @classmethod
    def bad_recipient_syntax(cls, value: str, why: str) -> Refusal:
        """RFC 3463 §3.2 X.1.3: bad destination mailbox address syntax."""
        return cls(553, "5.1.3", f"recipient address {value!r} is not valid: {why}")

    @classmethod
    def temporary_failure(cls, text: str) -> Refusal:
        """RFC 3463 §3.4 X.3.0: a local problem; the client should try again later."""
        return cls(451, "4.3.0", text)
