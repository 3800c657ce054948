"""Session expiry (idle and absolute) and the one-time code's rules, on their own clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from accounts import otp
from web.sessions import SessionStore


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_idle_expiry() -> None:
    clock = Ticks()
    store = SessionStore(idle=60, lifetime=3600, clock=clock)
    session = store.new()
    clock.now += 59
    assert store.get(session.id) is session  # each request restarts the idle clock
    clock.now += 59
    assert store.get(session.id) is session
    clock.now += 61
    assert store.get(session.id) is None
    assert store.get(session.id) is None  # gone for good


def test_absolute_expiry_even_when_busy() -> None:
    clock = Ticks()
    store = SessionStore(idle=60, lifetime=300, clock=clock)
    session = store.new()
    for _ in range(5):
        clock.now += 50
        assert store.get(session.id) is session
    clock.now += 51
    assert store.get(session.id) is None


def test_rotation_changes_identifier_and_csrf_token() -> None:
    store = SessionStore(idle=60, lifetime=300)
    session = store.new()
    session.data["x"] = 1
    fresh = store.rotate(session)
    assert fresh.id != session.id and fresh.csrf != session.csrf
    assert fresh.data == {"x": 1}
    assert store.get(session.id) is None and store.get(fresh.id) is fresh
    assert fresh.csrf_ok(fresh.csrf) and not fresh.csrf_ok(session.csrf)
    assert not fresh.csrf_ok("")


NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def test_code_is_six_digits_and_serves_once() -> None:
    challenge, code = otp.new_challenge(7, NOW)
    assert len(code) == 6 and code.isdigit()
    assert code.encode() not in repr(challenge).encode()
    used, outcome = otp.verify(challenge, code, NOW)
    assert outcome == "ok"
    assert otp.verify(used, code, NOW)[1] == "used"


def test_code_expires_after_ten_minutes() -> None:
    challenge, code = otp.new_challenge(7, NOW)
    assert otp.verify(challenge, code, NOW + timedelta(minutes=9, seconds=59))[1] == "ok"
    assert otp.verify(challenge, code, NOW + timedelta(minutes=10))[1] == "expired"


def test_five_tries() -> None:
    challenge, code = otp.new_challenge(7, NOW)
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    outcomes = []
    for _ in range(5):
        challenge, outcome = otp.verify(challenge, wrong, NOW)
        outcomes.append(outcome)
    assert outcomes == ["wrong"] * 4 + ["exhausted"]
    assert otp.verify(challenge, code, NOW)[1] == "exhausted"


def test_resend_interval() -> None:
    challenge, _code = otp.new_challenge(7, NOW)
    assert not otp.may_resend(challenge, NOW + timedelta(seconds=59))
    assert otp.may_resend(challenge, NOW + timedelta(seconds=60))


def test_a_flood_of_anonymous_sessions_does_not_sign_anyone_out() -> None:
    store = SessionStore(idle=60, lifetime=300, max_sessions=4)
    signed = store.rotate(store.new())
    signed.data["account_id"] = 1
    anonymous = [store.new() for _ in range(20)]
    assert store.get(signed.id) is signed
    assert store.get(anonymous[0].id) is None  # the oldest anonymous ones went first
    assert store.get(anonymous[-1].id) is anonymous[-1]
