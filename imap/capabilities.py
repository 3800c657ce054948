"""The CAPABILITY list, by session state (RFC 9051 §6.1.1, §7.2.2).

Before TLS the server announces STARTTLS and LOGINDISABLED and no AUTH= mechanism, so that
no client sends a credential in clear (RFC 9051 §6.2.3, RFC 8314). After authentication
AUTH= and STARTTLS disappear, as RFC 9051 §7.2.2 recommends.
"""

from __future__ import annotations

from collections.abc import Iterable

# Extensions announced once authenticated; each is implemented in imap/commands/.
EXTENSIONS: tuple[str, ...] = (
    "ID",  # RFC 2971
    "ENABLE",  # RFC 5161
    "IDLE",  # RFC 2177
    "NAMESPACE",  # RFC 2342
    "UNSELECT",  # RFC 3691
    "UIDPLUS",  # RFC 4315
    "MOVE",  # RFC 6851
    "CHILDREN",  # RFC 3348
    "SPECIAL-USE",  # RFC 6154
    "CREATE-SPECIAL-USE",  # RFC 6154 §3
    "LIST-EXTENDED",  # RFC 5258
    "LIST-STATUS",  # RFC 5819
    "LITERAL+",  # RFC 7888
    "CONDSTORE",  # RFC 7162
    "QRESYNC",  # RFC 7162
    "ESEARCH",  # RFC 4731
    "SEARCHRES",  # RFC 5182
    "QUOTA",  # RFC 9208
    "QUOTA=RES-STORAGE",
    "ACL",  # RFC 4314
    "RIGHTS=texk",
    "STATUS=SIZE",  # RFC 8438
    "UTF8=ACCEPT",  # RFC 6855
    "BINARY",  # RFC 3516
    "MULTIAPPEND",  # RFC 3502
    "SORT",  # RFC 5256 (imap/commands/sort_thread.py)
    "SORT=DISPLAY",  # RFC 5957
    "THREAD=ORDEREDSUBJECT",  # RFC 5256
    "THREAD=REFERENCES",  # RFC 5256
    "ESORT",  # RFC 5267 §3.1
    "CONTEXT=SEARCH",  # RFC 5267 §4 (imap/contexts.py)
    "CONTEXT=SORT",  # RFC 5267 §4
    "WITHIN",  # RFC 5032
    "COMPRESS=DEFLATE",  # RFC 4978
    "OBJECTID",  # RFC 8474
    "PREVIEW",  # RFC 8970
    "LIST-MYRIGHTS",  # RFC 8440
    "SAVEDATE",  # RFC 8514
    "CATENATE",  # RFC 4469 (without URLAUTH)
    "REPLACE",  # RFC 8508
    "NOTIFY",  # RFC 5465
    "METADATA",  # RFC 5464 (server and mailbox annotations)
)


def capabilities(
    *, tls: bool, authenticated: bool, mechanisms: Iterable[str], append_limit: int
) -> list[str]:
    """Capabilities for the current state of a session."""
    caps = ["IMAP4rev1", "IMAP4rev2"]
    if not authenticated:
        if not tls:
            caps += ["STARTTLS", "LOGINDISABLED"]
        else:
            caps += [f"AUTH={m}" for m in mechanisms]
        caps += ["SASL-IR", "ID", "ENABLE", "LITERAL+"]
        return caps
    caps += list(EXTENSIONS)
    caps.append(f"APPENDLIMIT={append_limit}")  # RFC 7889
    return caps
