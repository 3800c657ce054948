"""FETCH data items as parsed from a command (RFC 9051 §6.4.5, RFC 3516 BINARY)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FetchAttr", "Section"]


@dataclass(frozen=True, slots=True)
class Section:
    """A body section specifier: ``1.2.HEADER.FIELDS (FROM SUBJECT)``.

    ``part`` is the MIME part path (empty for the whole message); ``text`` is
    one of ``HEADER``, ``HEADER.FIELDS``, ``HEADER.FIELDS.NOT``, ``TEXT``,
    ``MIME`` or None; ``fields`` are the header names as the client wrote them
    (they are echoed back in the response).
    """

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def format(self) -> str:
        """Wire form inside the brackets, used again in the FETCH response."""
        out = ".".join(str(p) for p in self.part)
        if self.text:
            out = f"{out}.{self.text}" if out else self.text
            if self.fields:
                out += " (" + " ".join(_field(f) for f in self.fields) + ")"
        return out


def _field(name: str) -> str:
    if name and all(0x21 <= ord(c) < 0x7F and c not in '(){%*"\\]' for c in name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class FetchAttr:
    """One FETCH item.

    ``name`` is upper-case: ``ENVELOPE``, ``FLAGS``, ``INTERNALDATE``,
    ``RFC822``, ``RFC822.HEADER``, ``RFC822.TEXT``, ``RFC822.SIZE``, ``BODY``
    (the structure without extensions), ``BODYSTRUCTURE``, ``UID``, ``MODSEQ``
    (RFC 7162), ``BODY[]`` (with ``section``), ``BINARY[]`` and ``BINARY.SIZE[]``
    (RFC 3516, ``section.part`` only), ``SAVEDATE`` (RFC 8514).
    ``partial`` is ``(origin, length)`` from ``<origin.length>``.
    """

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False

    def response_name(self) -> str:
        """The item name to use in the FETCH response (RFC 9051 §7.5.2).

        ``.PEEK`` is dropped and only the partial origin is echoed:
        ``BODY.PEEK[HEADER]<0.100>`` is answered as ``BODY[HEADER]<0>``.
        """
        if self.section is None:
            return self.name
        base = self.name[:-2]
        out = f"{base}[{self.section.format()}]"
        if self.partial is not None:
            out += f"<{self.partial[0]}>"
        return out

    @property
    def sets_seen(self) -> bool:
        """Whether fetching this item sets ``\\Seen`` (RFC 9051 §6.4.5)."""
        return not self.peek and self.name in ("BODY[]", "BINARY[]", "RFC822", "RFC822.TEXT")
