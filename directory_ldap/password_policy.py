"""The lock-out of LDAP binds: slapd's ppolicy overlay, fed from the [auth] settings.

Why here and not in the gateway: LDAP clients (address books) bind to slapd itself, which
checks the ``{ARGON2}`` hashes the gateway publishes, so no gateway code sees an LDAP
password. Debian's slapd 2.5 ships ``ppolicy.so``; one policy entry (the overlay's
default) gives every published mailbox the lock of SMTP and IMAP: ``pwdMaxFailure`` =
``lock_after_failures`` wrong binds within ``pwdFailureCountInterval`` =
``failure_window`` lock the entry for ``pwdLockoutDuration`` = ``lock_duration``.
Without ``ppolicy_use_lockout`` a locked entry answers ``invalidCredentials`` (49), as a
wrong password or an unknown entry does. What slapd cannot do is described in
``directory_ldap/README.md`` (no per-address counting, no argon2 budget, its "delay" is a
temporary lock from the first failure, so it is not used).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import ldap
import ldap.modlist

from config.settings import AuthSettings

log = logging.getLogger("mssante.directory")

POLICY_RDN = "cn=password-policy"


def policy_dn(base_dn: str) -> str:
    return f"{POLICY_RDN},{base_dn}"


def policy_attributes(auth: AuthSettings) -> dict[str, list[bytes]]:
    """The pwdPolicy entry (RFC draft-behera-ldap-password-policy, OpenLDAP 2.5 names).

    Durations are whole seconds in slapd, at least 1 (0 would mean "until an administrator
    unlocks" for the lock and "never forget" for the count)."""
    def secs(value: float) -> bytes:
        return str(max(1, math.ceil(value))).encode()

    return {
        "objectClass": [b"organizationalRole", b"pwdPolicy"],
        "cn": [POLICY_RDN.partition("=")[2].encode()],
        "description": [b"Lock-out of LDAP binds, written by the gateway from [auth] at start"],
        "pwdAttribute": [b"userPassword"],
        "pwdLockout": [b"TRUE"],
        "pwdMaxFailure": [str(auth.lock_after_failures).encode()],
        "pwdLockoutDuration": [secs(auth.lock_duration)],
        "pwdFailureCountInterval": [secs(auth.failure_window)],
    }


def ensure_policy(conn: Any, base_dn: str, auth: AuthSettings) -> None:
    """Creates the policy entry, or brings its values in line with the settings."""
    dn = policy_dn(base_dn)
    wanted = policy_attributes(auth)
    try:
        try:
            conn.add_s(dn, ldap.modlist.addModlist(wanted))
        except ldap.ALREADY_EXISTS:
            changes = [(ldap.MOD_REPLACE, name, values) for name, values in wanted.items()
                       if name not in ("objectClass", "cn")]
            conn.modify_s(dn, changes)
    except ldap.LDAPError as exc:
        # A slapd started from an older configuration (without the overlay) refuses the
        # pwdPolicy class: the directory still works, without the lock-out, and says so.
        log.warning("event=directory_password_policy_missing dn=%s error=%s", dn,
                    type(exc).__name__)


def slapd_lines(base_dn: str) -> str:
    """The overlay lines of the database holding the mailboxes (slapd.conf)."""
    return (
        "# Lock-out of binds (ppolicy, policy entry written from [auth]); no\n"
        "# ppolicy_use_lockout: a locked entry answers like a wrong password.\n"
        "overlay ppolicy\n"
        f'ppolicy_default "{policy_dn(base_dn)}"\n'
    )
