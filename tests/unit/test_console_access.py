"""The console's accounts, scope rule, sessions and throttles, without a server."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from orchestrator.config import load_config
from orchestrator.console.accounts import Role, StaffBook, ensure_dev_accounts, new_account
from orchestrator.console.guard import (
    LOCK_AFTER_FAILURES,
    LOCK_FOR_S,
    RateLimit,
    Sessions,
    SignInGuard,
    csrf_ok,
)
from orchestrator.console.scope import OutOfScope, Scope
from orchestrator.console.server import playbook_s


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_dev_accounts_are_written_0600_and_never_over_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "pki" / "staff.json"
    old_umask = os.umask(0)  # a permissive umask must not widen the file
    try:
        passwords = ensure_dev_accounts(path, "SP01", "SP01-W1")
    finally:
        os.umask(old_umask)
    assert passwords is not None and set(passwords) == {"clerk", "head", "director", "auditor"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    accounts = StaffBook(path).load()
    assert accounts["clerk"].window_id == "SP01-W1"
    assert accounts["head"].service_point_id == "SP01"
    assert accounts["clerk"].check_password(passwords["clerk"])
    assert not accounts["clerk"].check_password(passwords["head"])
    before = path.read_bytes()
    assert ensure_dev_accounts(path, "SP02", "SP02-W1") is None
    assert path.read_bytes() == before


def test_passwords_are_hashed_not_stored(tmp_path: Path) -> None:
    path = tmp_path / "staff.json"
    passwords = ensure_dev_accounts(path, "SP01", "SP01-W1")
    assert passwords is not None
    text = path.read_text()
    assert all(p not in text for p in passwords.values())
    assert "$argon2" in text


def test_add_set_password_and_disable_keep_the_file_private(tmp_path: Path) -> None:
    path = tmp_path / "staff.json"
    ensure_dev_accounts(path, "SP01", "SP01-W1")
    book = StaffBook(path)
    book.add(new_account("li", Role.HEAD, "secret-pass-1", "SP02"))
    with pytest.raises(ValueError, match="exists"):
        book.add(new_account("li", Role.HEAD, "secret-pass-1", "SP02"))
    book.update("li", password="secret-pass-2")
    assert book.get("li") is not None and book.get("li").check_password("secret-pass-2")  # type: ignore[union-attr]
    book.update("li", disabled=True)
    assert book.get("li").disabled  # type: ignore[union-attr]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(ValueError, match="no staff account"):
        book.update("nobody", disabled=True)


@pytest.mark.parametrize(
    ("role", "sp", "window", "message"),
    [
        (Role.CLERK, "SP01", "", "needs a window"),
        (Role.HEAD, "", "", "needs a service point"),
        (Role.DIRECTOR, "", "", "at least 8"),
    ],
)
def test_bad_accounts_are_refused(role: Role, sp: str, window: str, message: str) -> None:
    password = "short" if message == "at least 8" else "long-enough-1"
    with pytest.raises(ValueError, match=message):
        new_account("x", role, password, sp, window)


def test_scope_of_each_role() -> None:
    clerk = Scope(Role.CLERK, "SP01", "SP01-W1")
    head = Scope(Role.HEAD, "SP01")
    for scope in (Scope(Role.DIRECTOR), Scope(Role.AUDITOR)):
        assert scope.allows("SP09", "SP09-W3")
    assert clerk.allows("SP01", "SP01-W1")
    assert not clerk.allows("SP01", "SP01-W2")
    assert head.allows("SP01", "SP01-W2")
    assert not head.allows("SP02", "SP02-W1")
    with pytest.raises(OutOfScope):
        clerk.check("SP01", "SP01-W2")
    assert clerk.where() == ("o.window_id = %(scope_window)s", {"scope_window": "SP01-W1"})
    assert head.where("x") == ("x.service_point_id = %(scope_sp)s", {"scope_sp": "SP01"})
    assert Scope(Role.DIRECTOR).where() == ("TRUE", {})


def test_only_heads_and_directors_cancel_and_auditors_see_masked_names() -> None:
    assert [r for r in Role if Scope(r).may_cancel] == [Role.HEAD, Role.DIRECTOR]
    assert Scope(Role.AUDITOR).name("王小明") == "王**"
    assert Scope(Role.DIRECTOR).name("王小明") == "王小明"


def test_only_directors_and_auditors_see_the_office_wide_reconciliation() -> None:
    assert [r for r in Role if Scope(r).office_wide] == [Role.DIRECTOR, Role.AUDITOR]


def test_sessions_expire_and_close() -> None:
    clock = Clock()
    sessions = Sessions(clock, ttl_s=60)
    token, session = sessions.open("head")
    assert sessions.get(token) is session
    assert sessions.get("forged") is None
    clock.now += 61
    assert sessions.get(token) is None
    token, _ = sessions.open("head")
    sessions.close(token)
    assert sessions.get(token) is None


def test_csrf_token_must_match() -> None:
    _, session = Sessions(Clock()).open("head")
    assert csrf_ok(session, session.csrf)
    assert not csrf_ok(session, "")
    assert not csrf_ok(session, None)
    assert not csrf_ok(session, session.csrf[:-1] + "x")


def test_an_account_locks_after_repeated_failures_and_unlocks_later() -> None:
    clock = Clock()
    guard = SignInGuard(clock)
    for _ in range(LOCK_AFTER_FAILURES - 1):
        guard.failed("clerk")
    assert not guard.locked("clerk")
    guard.failed("clerk")
    assert guard.locked("clerk")
    assert not guard.locked("head")
    clock.now += LOCK_FOR_S + 1
    assert not guard.locked("clerk")


def test_a_success_clears_the_failures() -> None:
    guard = SignInGuard(Clock())
    for _ in range(LOCK_AFTER_FAILURES - 1):
        guard.failed("clerk")
    guard.succeeded("clerk")
    guard.failed("clerk")
    assert not guard.locked("clerk")


def test_rate_limit_is_per_key_and_slides() -> None:
    clock = Clock()
    limit = RateLimit(3, 60.0, clock)
    assert [limit.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limit.allow("b")
    clock.now += 59
    assert not limit.allow("a")
    clock.now += 2
    assert limit.allow("a")


def test_staff_command_adds_sets_passwords_and_disables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from orchestrator.cli import main

    staff = ["staff", "--data-dir", str(tmp_path)]
    monkeypatch.setattr("sys.stdin", io.StringIO("first-password\n"))
    assert main([*staff, "add", "li", "--role", "head"]) == 2  # no file yet
    assert "does not exist" in capsys.readouterr().err
    ensure_dev_accounts(tmp_path / "pki" / "staff.json", "SP01", "SP01-W1")
    monkeypatch.setattr("sys.stdin", io.StringIO("first-password\n"))
    assert main([*staff, "add", "li", "--role", "head"]) == 2
    assert "needs a service point" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("first-password\n"))
    assert main([*staff, "add", "li", "--role", "head", "--service-point", "SP02"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("second-password\n"))
    assert main([*staff, "set-password", "li"]) == 0
    book = StaffBook(tmp_path / "pki" / "staff.json")
    li = book.get("li")
    assert li is not None and li.check_password("second-password") and not li.disabled
    assert main([*staff, "disable", "li"]) == 0
    li = book.get("li")
    assert li is not None and li.disabled
    assert stat.S_IMODE(book.path.stat().st_mode) == 0o600


def test_each_channel_is_overdue_after_its_own_playbook_scaled() -> None:
    config = load_config(None)
    seconds = playbook_s(config)
    assert set(seconds) == {c.value for c in config.playbooks}
    assert len(set(seconds.values())) > 1  # not one fixed time for every channel
    for channel in config.playbooks:
        assert seconds[channel.value] == config.playbooks[channel].final_by_s
    fast = playbook_s(config.with_settings(time_scale=0.5))
    assert fast == {name: s * 0.5 for name, s in seconds.items()}
