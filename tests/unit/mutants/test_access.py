"""The authorization table's reasons and the supervisors' PIN check, value for value,
written for the mutants of access/policy.py and access/supervisors.py that `make mutate`
found alive. The PIN check runs against a scripted lockout here (the real one, against
Redis, is tests/integration/test_pin_lockout.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from orchestrator.access import supervisors as sv
from orchestrator.access.policy import TABLE, Rule, Scope, denial, masks_payer_names
from orchestrator.domain import ids
from orchestrator.domain.principals import AccessSettings, Principal, Role
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.store.lockout import Admission, Begun

T1 = Principal("E1T1", Role.TERMINAL, "E1W1", "E1")
SCOPE = Scope(subscribers={"case-system": "business"})


def why(method: str, principal: Principal, request: Any) -> str | None:
    return denial(TABLE.get(method), principal, request, SCOPE)


# ---- policy ---------------------------------------------------------------------------------


def test_each_refusal_says_its_reason() -> None:
    pay = "/windowpay.v1.Terminal/Pay"
    assert why(pay, T1, pb.PayRequest(terminal_id="E1T2")) == "terminal_id 'E1T2' is not the caller"
    long = "T" * 40
    assert why(pay, T1, pb.PayRequest(terminal_id=long)) == (
        f"terminal_id {'T' * 32!r} is not the caller"
    )
    watch = "/windowpay.v1.Terminal/WatchWindow"
    assert why(watch, T1, pb.WatchWindowRequest(terminal_id="E1T1", window_id="E1W2")) == (
        "window 'E1W2' is not the terminal's window"
    )
    assert why(watch, T1, pb.WatchWindowRequest(terminal_id="E1T2", window_id="E1W2")) == (
        "terminal_id 'E1T2' is not the caller"
    )
    assert why(watch, T1, pb.WatchWindowRequest(terminal_id="E1T1")) is None
    assert why(watch, T1, pb.WatchWindowRequest(terminal_id="E1T1", window_id="E1W1")) is None
    refund = "/windowpay.v1.Terminal/Refund"
    assert why(refund, T1, pb.RefundRequest(terminal_id="E1T1", order_id="E2-A")) == (
        "order 'E2-A' is not of service point E1"
    )
    assert why(refund, T1, pb.RefundRequest(terminal_id="E1T2", order_id="E2-A")) == (
        "terminal_id 'E1T2' is not the caller"
    )
    assert why(refund, T1, pb.RefundRequest(terminal_id="E1T1", order_id="E1-A")) is None
    assert why(refund, T1, pb.RefundRequest(terminal_id="E1T1", order_id="NODASH")) == (
        "order 'NODASH' is not of service point E1"
    )
    get = "/windowpay.v1.Terminal/GetOrder"
    assert why(get, T1, pb.GetOrderRequest(business_no="B1")) is None  # the answer is checked
    assert why(get, T1, pb.GetOrderRequest(order_id="E1-A")) is None
    reader = Principal("audit", Role.AUDITOR)
    assert why(get, reader, pb.GetOrderRequest(order_id="E2-A")) is None
    ack = "/windowpay.v1.BusinessGateway/AckPayments"
    business = Principal("business", Role.BUSINESS)
    assert why(ack, business, pb.AckPaymentsRequest(subscriber_id="other")) == (
        "subscriber_id 'other' is not one the config gives it"
    )
    assert why(ack, business, pb.AckPaymentsRequest(subscriber_id="case-system")) is None
    assert why(ack, Principal("b2", Role.BUSINESS), pb.AckPaymentsRequest(
        subscriber_id="case-system")) is not None  # fmt: skip
    assert why("/windowpay.v1.Nope/Nope", business, None) == "not allowed for its role"
    assert why(pay, business, pb.PayRequest()) == "not allowed for its role"
    assert denial(Rule(frozenset({Role.BUSINESS})), business, None, SCOPE) is None


def test_answers_found_by_another_key_are_checked_by_their_order() -> None:
    rule = TABLE["/windowpay.v1.Receipts/GetReceipt"]
    assert rule.answer is not None
    assert rule.answer(T1, pb.Order(order_id="E2-A"), SCOPE) == (
        "order 'E2-A' is not of service point E1"
    )
    assert rule.answer(T1, pb.Order(order_id="E1-A"), SCOPE) is None
    assert rule.answer(Principal("audit", Role.AUDITOR), pb.Order(order_id="E2-A"), SCOPE) is None
    assert rule.answer(T1, object(), SCOPE) is None  # no order id: nothing to check


def test_only_auditors_read_names_masked() -> None:
    assert [r for r in Role if masks_payer_names(Principal("p", r))] == [Role.AUDITOR]


# ---- PINs ----------------------------------------------------------------------------------


def test_a_pin_hash_is_scrypt_with_its_parameters_and_a_fresh_salt() -> None:
    stored = sv.hash_pin("123456")
    kind, n, r, p, salt, digest = stored.split("$")
    assert (kind, n, r, p) == ("scrypt", "16384", "8", "1")
    raw_salt = base64.b64decode(salt)
    assert len(raw_salt) == 16
    expected = hashlib.scrypt(b"123456", salt=raw_salt, n=16384, r=8, p=1, dklen=32)
    assert base64.b64decode(digest) == expected
    assert sv.hash_pin("123456").split("$")[4] != salt
    assert sv.pin_matches("123456", stored)
    assert not sv.pin_matches("123457", stored)
    assert not sv.pin_matches("123456", stored.replace("scrypt$", "bcrypt$"))
    assert not sv.pin_matches("123456", "scrypt$16384$8$1$salt")  # a field short
    assert not sv.pin_matches("123456", f"scrypt$x$8$1${salt}${digest}")


def test_a_pin_is_six_to_twelve_digits() -> None:
    for good in ("000000", "123456789012"):
        sv.check_pin_format(good)
    for bad in ("12345", "1234567890123", "12345a", "١٢٣٤٥٦", "123456\n"):
        with pytest.raises(ValueError, match=r"^a PIN is 6 to 12 digits 0-9$"):
            sv.check_pin_format(bad)


def test_set_pin_replaces_the_hash_and_forgets_the_development_pin(tmp_path: Path) -> None:
    access = AccessSettings(supervisors={"SUP01": "E1", "SUP02": "E1"})
    assert sv.ensure_dev_pins(access, tmp_path) == ["SUP01", "SUP02"]
    dev = json.loads((tmp_path / "supervisors.json").read_text())
    assert sorted(dev) == ["SUP01", "SUP02"] and all(len(p) == 6 for p in dev.values())
    hashes = json.loads((tmp_path / "supervisor_pins.json").read_text())
    assert all(sv.pin_matches(dev[s], hashes[s]) for s in dev)
    assert sv.ensure_dev_pins(access, tmp_path) == []  # never over existing files
    sv.set_pin(tmp_path, "SUP01", "987654")
    assert json.loads((tmp_path / "supervisors.json").read_text()) == {"SUP02": dev["SUP02"]}
    hashes = json.loads((tmp_path / "supervisor_pins.json").read_text())
    assert sv.pin_matches("987654", hashes["SUP01"])
    assert sv.pin_matches(dev["SUP02"], hashes["SUP02"])
    assert (tmp_path / "supervisor_pins.json").stat().st_mode & 0o777 == 0o600
    with pytest.raises(ValueError):
        sv.set_pin(tmp_path, "SUP01", "12")


def test_set_pin_makes_the_hash_file_when_there_is_none(tmp_path: Path) -> None:
    sv.set_pin(tmp_path, "SUP09", "555555")
    hashes = json.loads((tmp_path / "supervisor_pins.json").read_text())
    assert list(hashes) == ["SUP09"] and sv.pin_matches("555555", hashes["SUP09"])
    assert (tmp_path / "supervisor_pins.json").stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "supervisors.json").exists()


def test_supervisors_without_a_pin_are_warned_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sv.set_pin(tmp_path, "SUP01", "555555")
    access = AccessSettings(supervisors={"SUP01": "E1", "SUP03": "E1", "SUP02": "E2"})
    with caplog.at_level(logging.WARNING, logger=sv.__name__):
        assert sv.ensure_dev_pins(access, tmp_path) == []
    assert caplog.messages == ["supervisors without a PIN (windowpay supervisors set-pin): "
                               "SUP02, SUP03"]  # fmt: skip


def test_a_hash_file_that_is_no_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "supervisor_pins.json"
    path.write_text("[1]")
    with pytest.raises(ValueError, match=r": expected an object of supervisor -> hash$"):
        sv.set_pin(tmp_path, "SUP01", "555555")


class ScriptedLockout:
    """Answers `begin` as told, and notes what the check reported."""

    def __init__(self, begun: Begun, *, locks: bool = False, fails: bool = False) -> None:
        self.begun, self.locks, self.fails = begun, locks, fails
        self.calls: list[tuple[str, ...]] = []

    async def begin(self, supervisor_id: str, terminal_id: str) -> Begun:
        if self.fails:
            raise RedisConnectionError("down")
        self.calls.append(("begin", supervisor_id, terminal_id))
        return self.begun

    async def wrong(self, supervisor_id: str) -> bool:
        self.calls.append(("wrong", supervisor_id))
        return self.locks

    async def right(self, supervisor_id: str, terminal_id: str) -> None:
        self.calls.append(("right", supervisor_id, terminal_id))


GO = Begun(Admission.GO, 0.0)


def supervisors(tmp_path: Path, lockout: ScriptedLockout) -> sv.Supervisors:
    sv.set_pin(tmp_path, "SUP01", "123456")
    sv.set_pin(tmp_path, "SUP02", "123456")
    access = AccessSettings(supervisors={"SUP01": "E1", "SUP02": "E2", "SUP03": "E1"})
    return sv.Supervisors(access, tmp_path, lockout)  # type: ignore[arg-type]


async def test_each_decision_with_its_detail(tmp_path: Path) -> None:
    cases = [
        (GO, False, "123456", sv.Decision(sv.Verdict.OK, checked=True), "right"),
        (GO, False, "654321", sv.Decision(sv.Verdict.WRONG, "wrong PIN", True), "wrong"),
        (GO, True, "654321",
            sv.Decision(sv.Verdict.LOCKED, "wrong PIN; the supervisor is now locked", True),
            "wrong"),
        (Begun(Admission.LOCKED, 899.6), False, "123456",
            sv.Decision(sv.Verdict.LOCKED, "locked for 900 s more"), None),
        (Begun(Admission.TERMINAL, 12.2), False, "123456",
            sv.Decision(sv.Verdict.TERMINAL_LIMIT, "E1T1 may try again in 12 s"), None),
        (Begun(Admission.BUSY, 3.0), False, "123456",
            sv.Decision(sv.Verdict.BUSY, "SUP01's attempts are all being checked"), None),
    ]  # fmt: skip
    for begun, locks, pin, decision, reported in cases:
        lockout = ScriptedLockout(begun, locks=locks)
        assert await supervisors(tmp_path, lockout).approve("SUP01", pin, "E1", "E1T1") == decision
        expected: list[tuple[str, ...]] = [("begin", "SUP01", "E1T1")]
        if reported == "right":
            expected.append(("right", "SUP01", "E1T1"))
        elif reported == "wrong":
            expected.append(("wrong", "SUP01"))
        assert lockout.calls == expected


async def test_who_is_no_supervisor_here_is_refused_uncounted(tmp_path: Path) -> None:
    lockout = ScriptedLockout(GO)
    checker = supervisors(tmp_path, lockout)
    assert await checker.approve("SUP02", "123456", "E1", "E1T1") == sv.Decision(
        sv.Verdict.ELSEWHERE, "SUP02 approves at E2, not E1"
    )
    assert await checker.approve("SUP03", "123456", "E1", "E1T1") == sv.Decision(
        sv.Verdict.UNKNOWN, "'SUP03' is not a supervisor here"
    )  # no PIN set
    assert await checker.approve("X" * 30, "123456", "E1", "E1T1") == sv.Decision(
        sv.Verdict.UNKNOWN, f"{'X' * 20!r} is not a supervisor here"
    )
    assert lockout.calls == []
    down = supervisors(tmp_path, ScriptedLockout(GO, fails=True))
    assert await down.approve("SUP01", "123456", "E1", "E1T1") == sv.Decision(
        sv.Verdict.UNAVAILABLE, "the PIN attempts cannot be counted"
    )


async def test_a_pin_set_meanwhile_is_read_and_a_broken_file_keeps_the_last(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checker = supervisors(tmp_path, ScriptedLockout(GO))
    assert (await checker.approve("SUP01", "123456", "E1", "E1T1")).verdict is sv.Verdict.OK
    sv.set_pin(tmp_path, "SUP03", "222222")
    assert (await checker.approve("SUP03", "222222", "E1", "E1T1")).verdict is sv.Verdict.OK
    (tmp_path / "supervisor_pins.json").write_text("[]")
    with caplog.at_level(logging.ERROR, logger=sv.__name__):
        assert (await checker.approve("SUP03", "222222", "E1", "E1T1")).verdict is sv.Verdict.OK
        # the broken file is read once, not again at each approval
        assert (await checker.approve("SUP03", "222222", "E1", "E1T1")).verdict is sv.Verdict.OK
    assert caplog.messages == [
        f"supervisor PIN hashes unreadable ({tmp_path / 'supervisor_pins.json'}: expected an "
        "object of supervisor -> hash); keeping the last ones"
    ]
    (tmp_path / "supervisor_pins.json").unlink()
    assert (await checker.approve("SUP03", "222222", "E1", "E1T1")).verdict is sv.Verdict.UNKNOWN


def test_long_ids_are_cut_in_the_reason() -> None:
    window = "W" * 50
    assert why(
        "/windowpay.v1.Terminal/WatchWindow", T1,
        pb.WatchWindowRequest(terminal_id="E1T1", window_id=window),
    ) == f"window {'W' * 32!r} is not the terminal's window"  # fmt: skip
    order_id = "E2-" + "X" * 50
    assert why("/windowpay.v1.Terminal/GetOrder", T1, pb.GetOrderRequest(order_id=order_id)) == (
        f"order {order_id[:40]!r} is not of service point E1"
    )
    subscriber = "s" * 50
    assert why(
        "/windowpay.v1.BusinessGateway/WatchPayments", Principal("business", Role.BUSINESS),
        pb.WatchPaymentsRequest(subscriber_id=subscriber),
    ) == f"subscriber_id {'s' * 40!r} is not one the config gives it"  # fmt: skip


def test_the_pin_files_are_written_indented_and_kept_private(tmp_path: Path) -> None:
    # An operator reads supervisors.json to hand out the development PINs: both files are
    # written with an indent of two, and each rewrite keeps them 0600.
    hashes_path, dev_path = tmp_path / "supervisor_pins.json", tmp_path / "supervisors.json"
    sv.set_pin(tmp_path, "SUP01", "555555")  # makes the hash file
    hashes = json.loads(hashes_path.read_text())
    assert hashes_path.read_text() == json.dumps(hashes, indent=2)
    dev_path.write_text(json.dumps({"SUP01": "111111", "SUP02": "222222"}))
    dev_path.chmod(0o600)
    sv.set_pin(tmp_path, "SUP01", "666666")  # replaces both files
    hashes = json.loads(hashes_path.read_text())
    assert hashes_path.read_text() == json.dumps(hashes, indent=2)
    assert dev_path.read_text() == json.dumps({"SUP02": "222222"}, indent=2)
    assert hashes_path.stat().st_mode & 0o777 == 0o600
    assert dev_path.stat().st_mode & 0o777 == 0o600


def test_development_pins_are_drawn_from_a_million(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[int] = []

    def highest(n: int) -> int:
        drawn.append(n)
        return n - 1

    monkeypatch.setattr(sv.secrets, "randbelow", highest)
    access = AccessSettings(supervisors={"SUP01": "E1", "SUP02": "E2"})
    assert sv.ensure_dev_pins(access, tmp_path) == ["SUP01", "SUP02"]
    assert drawn == [1_000_000, 1_000_000]
    pins = json.loads((tmp_path / "supervisors.json").read_text())
    assert pins == {"SUP01": "999999", "SUP02": "999999"}
    # both files are written with an indent of two (an operator reads them)
    assert (tmp_path / "supervisors.json").read_text() == json.dumps(pins, indent=2)
    hashes = json.loads((tmp_path / "supervisor_pins.json").read_text())
    assert (tmp_path / "supervisor_pins.json").read_text() == json.dumps(hashes, indent=2)


async def test_a_hash_file_broken_from_the_start_knows_no_supervisor(tmp_path: Path) -> None:
    (tmp_path / "supervisor_pins.json").write_text("[]")
    access = AccessSettings(supervisors={"SUP01": "E1"})
    checker = sv.Supervisors(access, tmp_path, ScriptedLockout(GO))  # type: ignore[arg-type]
    decision = await checker.approve("SUP01", "123456", "E1", "E1T1")
    assert decision == sv.Decision(sv.Verdict.UNKNOWN, "'SUP01' is not a supervisor here")


def test_an_order_of_no_office_is_no_offices_whatever_its_id() -> None:
    # An order whose service point no office holds today (or whose id names none) is
    # outside every office's reach: "no office" must not read as some office's id, even
    # one spelled like a placeholder. Fails with _office_of's default, or its answer for a
    # malformed id, planted as "XXXX" (x__office_of__mutmut_5 and _7).
    placeholder = Principal("backoffice-x", Role.BACKOFFICE, office="XXXX")
    scope = Scope(offices={"E1": "XXXX"})
    rule = TABLE["/windowpay.v1.BusinessGateway/GetOrder"]
    assert rule.answer is not None
    assert rule.answer(placeholder, pb.Order(order_id=ids.new_order_id("E1")), scope) is None
    for order_id in (ids.new_order_id("E9"), "no dash at all"):
        reason = rule.answer(placeholder, pb.Order(order_id=order_id), scope)
        assert reason == f"order {order_id!r} is not of office XXXX"


def test_an_offices_refusal_cuts_the_order_id_at_40() -> None:
    # Fails with _own_office's cut planted as 41 (x__own_office__mutmut_10).
    principal = Principal("backoffice-a", Role.BACKOFFICE, office="EA")
    order_id = "E2-" + "Y" * 60
    rule = TABLE["/windowpay.v1.BusinessGateway/GetOrder"]
    assert rule.answer is not None
    reason = rule.answer(principal, pb.Order(order_id=order_id), Scope(offices={"E2": "EB"}))
    assert reason == f"order {order_id[:40]!r} is not of office EA"
