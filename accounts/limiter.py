"""Password guessing: growing delays, then a temporary lock, per account and per address.

Why: application passwords are long and random, but a client that may try without limit
over many connections eventually gets lucky, and every try costs the server an argon2
verification (tens of milliseconds of CPU and 64 MiB). Every front-end that checks a
password (SMTP AUTH, IMAP LOGIN/AUTHENTICATE, the web portal) asks one
:class:`LoginLimiter` before and tells it after, through
:meth:`accounts.authenticator.Authenticator.check_password`:

* after ``delay_after_failures`` failures of one login name (or
  ``address_delay_after_failures`` from one client address) each answer waits
  ``delay_initial`` seconds, doubling with each further failure up to ``delay_max``;
* after ``lock_after_failures`` failures of one login name (``address_lock_after_failures``
  from one address) every login of that name (from that address) is refused for
  ``lock_duration`` seconds, the right password too, with the usual failure reply;
* one address may cause at most ``address_hash_budget`` argon2 verifications per
  ``hash_budget_window``; beyond it, logins that are not already remembered fail at once.

Login names are counted whether or not a mailbox has them, so an unknown address and a
wrong password behave alike. State is in memory, per process (nothing here needs to
survive a restart, and a restart is no faster than the lock); bounded by
:data:`MAX_ENTRIES` names and addresses, least recently failed dropped first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from config.settings import AuthSettings

MAX_ENTRIES = 100_000

_V = TypeVar("_V")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do before checking a password: wait ``delay`` seconds, and refuse without
    checking when ``refused`` names why ("account locked", "address locked")."""

    delay: float = 0.0
    refused: str | None = None


@dataclass(slots=True)
class _Failures:
    count: int = 0
    last: float = 0.0
    locked_until: float = 0.0


@dataclass(slots=True)
class _Budget:
    tokens: float
    at: float


class LoginLimiter:
    """Failure counters of login names and client addresses, and the argon2 budget."""

    def __init__(self, settings: AuthSettings | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or AuthSettings()
        self._clock = clock
        self._names: OrderedDict[str, _Failures] = OrderedDict()
        self._addresses: OrderedDict[str, _Failures] = OrderedDict()
        self._budgets: OrderedDict[str, _Budget] = OrderedDict()

    # -- the interface ---------------------------------------------------------------
    def before(self, login: str, client: str | None) -> Verdict:
        """Asked before a password is checked: how long to wait, and whether to refuse."""
        now = self._clock()
        s = self.settings
        name = self._get(self._names, _key(login), now)
        addr = self._get(self._addresses, client, now) if client else None
        # A locked answer waits as long as the longest delay: it must not come back faster
        # than a wrong password would (that would show the lock) nor invite a fast loop.
        if name is not None and name.locked_until > now:
            return Verdict(delay=s.delay_max, refused="account locked")
        if addr is not None and addr.locked_until > now:
            return Verdict(delay=s.delay_max, refused="address locked")
        delay = max(
            self._delay(name, s.delay_after_failures),
            self._delay(addr, s.address_delay_after_failures),
        )
        return Verdict(delay=delay)

    def may_hash(self, client: str | None) -> bool:
        """Takes one argon2 verification from the address's budget; False when spent."""
        if not client:
            return True
        s = self.settings
        now = self._clock()
        rate = s.address_hash_budget / s.hash_budget_window
        budget = self._budgets.get(client)
        if budget is None:
            budget = _Budget(float(s.address_hash_budget), now)
        else:
            budget.tokens = min(float(s.address_hash_budget),
                                budget.tokens + (now - budget.at) * rate)
            budget.at = now
        self._remember(self._budgets, client, budget)
        if budget.tokens < 1.0:
            return False
        budget.tokens -= 1.0
        return True

    def failed(self, login: str, client: str | None, *, name_tried: bool = True) -> None:
        """Counts a failure (``name_tried=False``: the password was not checked, so only
        the address is counted)."""
        now = self._clock()
        s = self.settings
        if name_tried:
            self._count(self._names, _key(login), now, s.lock_after_failures)
        if client:
            self._count(self._addresses, client, now, s.address_lock_after_failures)

    def succeeded(self, login: str, client: str | None) -> None:
        """A right password: the name's failures are forgotten (the address's are not, or
        one valid account would launder an address's guesses at others)."""
        self._names.pop(_key(login), None)

    # -- inside ----------------------------------------------------------------------
    def _delay(self, f: _Failures | None, after: int) -> float:
        if f is None or f.count < after:
            return 0.0
        s = self.settings
        return float(min(s.delay_max, s.delay_initial * 2 ** min(f.count - after, 30)))

    def _get(self, table: OrderedDict[str, _Failures], key: str | None,
             now: float) -> _Failures | None:
        if key is None:
            return None
        f = table.get(key)
        if f is not None and f.locked_until <= now and now - f.last > self.settings.failure_window:
            del table[key]  # quiet long enough: forgotten
            return None
        return f

    def _count(self, table: OrderedDict[str, _Failures], key: str, now: float,
               lock_after: int) -> None:
        f = self._get(table, key, now) or _Failures()
        f.count += 1
        f.last = now
        if f.count >= lock_after and f.locked_until <= now:
            # Also after a lock ran out: until a success or failure_window of quiet, each
            # further failure locks again (one guess per lock_duration).
            f.locked_until = now + self.settings.lock_duration
        self._remember(table, key, f)

    @staticmethod
    def _remember(table: OrderedDict[str, _V], key: str, value: _V) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > MAX_ENTRIES:
            table.popitem(last=False)


def _key(login: str) -> str:
    return login.strip().lower()[:320]
