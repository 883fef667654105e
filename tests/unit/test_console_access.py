"""The console's accounts, scope rule, sessions and throttles, without a server."""

from __future__ import annotations

import ipaddress
import os
import stat
import threading
import tracemalloc
from pathlib import Path

import pytest

from orchestrator.config import load_config
from orchestrator.console.accounts import (
    Role,
    StaffAccount,
    StaffBook,
    ensure_dev_accounts,
    new_account,
    valid_username,
)
from orchestrator.console.guard import (
    FORGET_AFTER_S,
    LOCK_AFTER_FAILURES,
    MOST_COUNTERS,
    RateLimit,
    Sessions,
    SignInGuard,
    client_address,
    csrf_ok,
    throttle_key,
)
from orchestrator.console.scope import StaffScope, Unplaced
from orchestrator.console.server import playbook_s
from orchestrator.domain.places import Places


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
    assert passwords is not None
    assert set(passwords) == {"clerk", "head", "director", "auditor", "province"}
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


def test_a_new_password_leaves_a_disabled_account_disabled(tmp_path: Path) -> None:
    """Only `staff enable` brings a disabled account back; a password reset does not."""
    path = tmp_path / "staff.json"
    ensure_dev_accounts(path, "SP01", "SP01-W1")
    book = StaffBook(path)
    book.update("head", disabled=True)
    book.update("head", password="secret-pass-2")
    head = book.get("head")
    assert head is not None and head.disabled and head.check_password("secret-pass-2")
    book.update("head", disabled=False)
    assert book.get("head").disabled is False  # type: ignore[union-attr]


def test_a_language_chosen_meanwhile_never_undoes_a_disable(tmp_path: Path) -> None:
    """The console saves an account's language while `windowpay staff disable` runs in
    another process: the read-change-write of each is under the file's lock, so the
    disable is never written over by the language's older copy of the file."""
    path = tmp_path / "staff.json"
    ensure_dev_accounts(path, "SP01", "SP01-W1")
    console, cli = StaffBook(path), StaffBook(path)
    loaded = console.load

    def load_then_race() -> dict[str, StaffAccount]:
        accounts = loaded()
        disabling = threading.Thread(
            target=cli.update, args=("director",), kwargs={"disabled": True}
        )
        disabling.start()
        disabling.join(timeout=1.0)  # it is done by now, unless it waits for the lock
        racing.append(disabling)
        return accounts

    racing: list[threading.Thread] = []
    console.load = load_then_race  # type: ignore[method-assign]
    console.set_language("director", "en")
    racing[0].join(timeout=10)
    director = cli.get("director")
    assert director is not None and director.disabled and director.language == "en"


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
    clerk = StaffScope(Role.CLERK, "SP01", "SP01-W1")
    head = StaffScope(Role.HEAD, "SP01")
    for scope in (StaffScope(Role.DIRECTOR), StaffScope(Role.AUDITOR)):
        assert scope.allows("SP09", "SP09-W3")
    assert clerk.allows("SP01", "SP01-W1")
    assert not clerk.allows("SP01", "SP01-W2")
    assert head.allows("SP01", "SP01-W2")
    assert not head.allows("SP02", "SP02-W1")
    assert clerk.where() == ("o.window_id = %(scope_window)s", {"scope_window": "SP01-W1"})
    assert head.where("x") == ("x.service_point_id = %(scope_sp)s", {"scope_sp": "SP01"})
    assert StaffScope(Role.DIRECTOR).where() == ("TRUE", {})


def _account(role: Role, **place: str) -> StaffAccount:
    return StaffAccount("someone", role, "", **place)


SAMPLE = load_config().deployment.places  # KM: SP01-SP20 (site of SP01: KM-HALL), QJ: SP21-23


def test_ranks_in_the_sample_province() -> None:
    """A KM director or auditor sees KM's orders (stamped, or unstamped at a KM point
    today) and none of QJ's; a site head their site; the province every office."""
    director = StaffScope.of(_account(Role.DIRECTOR, office_id="KM"), SAMPLE)
    auditor = StaffScope.of(_account(Role.AUDITOR, office_id="QJ"), SAMPLE)
    site_id = SAMPLE.place_of("SP01").site_id
    site = StaffScope.of(_account(Role.SITE, site_id=site_id), SAMPLE)
    province = StaffScope.of(_account(Role.PROVINCE), SAMPLE)
    km, qj = ("SP01", "SP01-W1", "KM", site_id), ("SP21", "SP21-W1", "QJ", "")
    assert director.allows(*km) and not director.allows(*qj)
    assert director.allows("SP02", "SP02-W1")  # written before orders carried an office
    assert not director.allows("SP21", "SP21-W1")
    assert not director.allows("SP01", "SP01-W1", "QJ")  # stamped QJ: QJ's money
    assert auditor.allows(*qj) and not auditor.allows(*km) and auditor.masks_names
    assert site.allows(*km) and not site.allows("SP02", "SP02-W1")
    assert not site.allows("SP02", "SP02-W1", "KM", "KM-OTHER")
    assert province.allows(*km) and province.allows(*qj)
    assert director.allows_order({"service_point_id": "SP01", "window_id": "W", "office_id": "KM"})
    sql, params = director.where()
    assert sql == (
        "(o.office_id = %(scope_office)s OR (o.office_id = '' "
        "AND o.service_point_id = ANY(%(scope_points)s)))"
    )
    assert params["scope_office"] == "KM" and "SP21" not in params["scope_points"]
    assert "SP20" in params["scope_points"]
    assert site.where()[1] == {"scope_site": site_id, "scope_points": ["SP01"]}
    assert province.where() == ("TRUE", {})
    assert province.deployment_wide and not director.deployment_wide
    assert StaffScope(Role.DIRECTOR).deployment_wide  # a deployment without offices


@pytest.mark.parametrize(
    ("account", "why"),
    [
        (_account(Role.DIRECTOR), "belongs to no office"),  # made before offices existed
        (_account(Role.AUDITOR), "belongs to no office"),
        (_account(Role.DIRECTOR, office_id="XX"), "office 'XX'"),  # an office since removed
        (_account(Role.SITE, site_id="NOPE"), "site 'NOPE'"),
    ],
)
def test_an_account_without_a_place_in_the_hierarchy_is_refused(
    account: StaffAccount, why: str
) -> None:
    with pytest.raises(Unplaced, match=why):
        StaffScope.of(account, SAMPLE)


def test_without_offices_a_director_made_before_them_sees_the_one_office() -> None:
    implicit = Places.implicit("某车管所", ("SP01", "SP02"))
    scope = StaffScope.of(_account(Role.DIRECTOR), implicit)
    assert scope.where() == ("TRUE", {}) and scope.deployment_wide


def test_who_may_cancel_and_who_sees_masked_names() -> None:
    assert [r for r in Role if StaffScope(r).may_cancel] == [Role.HEAD, Role.SITE, Role.DIRECTOR]
    assert StaffScope(Role.AUDITOR).name("王小明") == "王**"
    assert StaffScope(Role.DIRECTOR).name("王小明") == "王小明"


def test_the_roles_above_a_site_see_the_office_wide_pages() -> None:
    wide = [r for r in Role if StaffScope(r).office_wide]
    assert wide == [Role.DIRECTOR, Role.AUDITOR, Role.PROVINCE]


def test_sessions_expire_and_close() -> None:
    clock = Clock()
    sessions = Sessions(clock, ttl_s=60)
    token, session = sessions.open("head", 0)
    assert sessions.get(token) is session
    assert sessions.get("forged") is None
    clock.now += 61
    assert sessions.get(token) is None
    token, _ = sessions.open("head", 0)
    sessions.close(token)
    assert sessions.get(token) is None


def test_csrf_token_must_match() -> None:
    _, session = Sessions(Clock()).open("head", 0)
    assert csrf_ok(session, session.csrf)
    assert not csrf_ok(session, "")
    assert not csrf_ok(session, None)
    assert not csrf_ok(session, session.csrf[:-1] + "x")


def test_an_account_locks_for_the_address_that_guessed_and_backs_off() -> None:
    clock = Clock()
    guard = SignInGuard(clock)
    for _ in range(LOCK_AFTER_FAILURES - 1):
        guard.failed("director", "203.0.113.9")
    assert not guard.locked("director", "203.0.113.9")
    guard.failed("director", "203.0.113.9")
    assert guard.locked("director", "203.0.113.9")
    # Not for the director at their own desk, nor for another account from there.
    assert not guard.locked("director", "10.1.2.3")
    assert not guard.locked("head", "203.0.113.9")
    waits = []
    for _ in range(9):  # each further wrong password, once allowed, doubles the wait
        start = clock.now
        while guard.locked("director", "203.0.113.9"):
            clock.now += 1
        waits.append(clock.now - start)
        guard.failed("director", "203.0.113.9")
    assert waits == [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]


def test_a_success_clears_the_failures_and_a_day_forgets_them() -> None:
    clock = Clock()
    guard = SignInGuard(clock)
    for _ in range(LOCK_AFTER_FAILURES - 1):
        guard.failed("clerk", "10.0.0.1")
    guard.succeeded("clerk", "10.0.0.1")
    guard.failed("clerk", "10.0.0.1")
    assert not guard.locked("clerk", "10.0.0.1")
    for _ in range(LOCK_AFTER_FAILURES - 2):
        guard.failed("clerk", "10.0.0.1")
    clock.now += FORGET_AFTER_S + 1
    guard.failed("clerk", "10.0.0.1")  # four wrong a day ago and one now: not five
    assert not guard.locked("clerk", "10.0.0.1")


def test_a_flood_of_distinct_names_keeps_the_counters_bounded() -> None:
    clock = Clock()
    guard = SignInGuard(clock)
    limit = RateLimit(20, 60.0, clock)

    def flood(start: int, count: int) -> int:
        for n in range(start, start + count):
            guard.failed(f"user{n:07d}", f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}")
            limit.allow(f"198.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}")
        return tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        filled = flood(0, 2 * MOST_COUNTERS)
        flooded = flood(2 * MOST_COUNTERS, 4 * MOST_COUNTERS)
    finally:
        tracemalloc.stop()
    assert len(guard) == len(limit) == MOST_COUNTERS
    assert flooded - filled < 0.05 * filled  # four times as many names, no more memory
    clock.now += FORGET_AFTER_S + 1  # a day later the next failure purges what is stale
    guard.failed("clerk", "10.0.0.1")
    assert len(guard) == 1
    limit.allow("10.0.0.1")
    assert len(limit) == 1


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", [], "203.0.113.9"),  # no proxy
        ("203.0.113.9", ["6.6.6.6"], "203.0.113.9"),  # an untrusted peer's header: ignored
        ("127.0.0.1", [], "127.0.0.1"),  # the proxy's own request
        ("127.0.0.1", ["198.51.100.7"], "198.51.100.7"),
        ("127.0.0.1", ["6.6.6.6, 198.51.100.7"], "198.51.100.7"),  # forged left hop
        ("127.0.0.1", ["6.6.6.6", "198.51.100.7, 10.0.0.5"], "198.51.100.7"),  # two proxies
        ("127.0.0.1", ["10.0.0.4, 10.0.0.5"], "10.0.0.4"),  # a client inside the trusted net
        ("127.0.0.1", ["198.51.100.7:5123"], "198.51.100.7"),
        ("127.0.0.1", ["[2001:db8::7]:443"], "2001:db8::7"),
        ("127.0.0.1", ["not-an-address"], "127.0.0.1"),
        ("::ffff:127.0.0.1", ["198.51.100.7"], "198.51.100.7"),
        (None, ["198.51.100.7"], ""),
    ],
)
def test_the_client_is_the_rightmost_address_no_trusted_proxy_wrote(
    peer: str | None, forwarded: list[str], expected: str
) -> None:
    trusted = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/24"))
    assert client_address(peer, forwarded, trusted) == expected


def test_without_trusted_proxies_no_header_is_believed() -> None:
    assert client_address("127.0.0.1", ["198.51.100.7"], ()) == "127.0.0.1"


def test_usernames_are_bounded() -> None:
    assert valid_username("li") and valid_username("wang_2-b") and valid_username("x" * 64)
    for name in ("", "-", "x" * 65, "a b", "a\nb", "a;b"):
        assert not valid_username(name), name
    with pytest.raises(ValueError, match="1 to 64"):
        new_account("x" * 65, Role.DIRECTOR, "secret-pass-1")


def test_a_new_password_or_disabling_raises_the_credential_epoch(tmp_path: Path) -> None:
    path = tmp_path / "staff.json"
    ensure_dev_accounts(path, "SP01", "SP01-W1")
    book = StaffBook(path)

    def epoch() -> int:
        account = book.get("head")
        assert account is not None
        return account.epoch

    assert epoch() == 0
    book.update("head", password="secret-pass-2")
    assert epoch() == 1
    book.update("head", disabled=True)
    assert epoch() == 2


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


def test_addresses_of_one_ipv6_64_share_a_limit() -> None:
    """A client owns a /64 at least: rotating addresses in it gets no more attempts."""
    clock = Clock()
    limit = RateLimit(20, 60.0, clock)
    allowed = [limit.allow(throttle_key(f"2001:db8::{n:x}")) for n in range(1, 22)]
    assert allowed == [True] * 20 + [False]
    assert limit.allow(throttle_key("2001:db8:0:1::1"))  # another /64: someone else
    assert throttle_key("203.0.113.9") == "203.0.113.9"


def test_a_flood_of_new_addresses_does_not_lift_a_lock() -> None:
    clock = Clock()
    guard = SignInGuard(clock)
    for _ in range(LOCK_AFTER_FAILURES):
        guard.failed("director", "203.0.113.9")
    assert guard.locked("director", "203.0.113.9")
    for n in range(MOST_COUNTERS + 50):
        guard.failed("director", f"198.51.{n // 256 % 256}.{n % 256}-{n}")
    assert guard.locked("director", "203.0.113.9")
    assert len(guard) <= MOST_COUNTERS + 1  # the bound holds for what holds no lock


def test_a_session_unused_for_half_an_hour_is_over_and_purged() -> None:
    clock = Clock()
    sessions = Sessions(clock)
    idle, _ = sessions.open("head", 0)
    kept, _ = sessions.open("clerk", 0)
    clock.now += 20 * 60
    assert sessions.get(kept) is not None  # used: its half hour starts again
    clock.now += 20 * 60
    assert sessions.get(kept) is not None
    assert sessions.get(idle) is None  # forty minutes unused
    sessions.open("director", 0)
    clock.now += 31 * 60
    sessions.open("auditor", 0)
    assert len(sessions) == 1  # the stale ones gone without anyone asking for them


def test_staff_command_places_directors_in_an_office_of_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sample has offices: a director names one of them, and one made before offices
    existed is placed by `set-office` (its sessions end with it)."""
    import io

    from orchestrator.cli import main

    staff = ["staff", "--data-dir", str(tmp_path)]
    ensure_dev_accounts(tmp_path / "pki" / "staff.json", "SP01", "SP01-W1")  # no office
    monkeypatch.setattr("sys.stdin", io.StringIO("first-password\n"))
    assert main([*staff, "add", "zhang", "--role", "director"]) == 2
    assert "belongs to one office" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("first-password\n"))
    assert main([*staff, "add", "zhang", "--role", "director", "--office", "XX"]) == 2
    assert "unknown office 'XX'" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("first-password\n"))
    assert main([*staff, "add", "zhang", "--role", "director", "--office", "QJ"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("first-password\n"))
    assert main([*staff, "add", "liu", "--role", "site", "--site", SAMPLE.sites[0].id]) == 0
    book = StaffBook(tmp_path / "pki" / "staff.json")
    assert book.load()["zhang"].office_id == "QJ"
    assert book.load()["liu"].site_id == SAMPLE.sites[0].id
    epoch = book.load()["director"].epoch
    assert main([*staff, "set-office", "head", "--office", "KM"]) == 2  # not an office role
    assert main([*staff, "set-office", "director", "--office", "KM"]) == 0
    placed = book.load()["director"]
    assert placed.office_id == "KM" and placed.epoch == epoch + 1
    assert StaffScope.of(placed, SAMPLE).office_id == "KM"
