"""The access layer without a server: the CA, the revocation list, the table, the
limits, supervisor PINs, and the config that names principals."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from orchestrator.access import pki
from orchestrator.access.limits import Gate
from orchestrator.access.policy import TABLE, Scope, denial
from orchestrator.access.revocation import Revocations
from orchestrator.access.supervisors import ensure_dev_pins, hash_pin, pin_matches, set_pin
from orchestrator.config import ConfigError, parse_config
from orchestrator.domain.principals import Limits, Principal, Role
from orchestrator.files import create_secret
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from tests.support import small_config, small_config_data

T1 = Principal("E1T1", Role.TERMINAL, "E1W1", "E1")
SCOPE = Scope(frozenset({"case-system"}))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_keys_are_0600_from_the_first_byte(tmp_path: Path) -> None:
    old = os.umask(0)  # even a permissive umask gives no moment of 0644
    try:
        pki.init(tmp_path, ["T01"])
    finally:
        os.umask(old)
    paths = pki.PkiPaths(tmp_path)
    for key in (paths.ca_key, paths.server_key, paths.client_key("T01")):
        assert mode(key) == 0o600
    assert mode(paths.client_cert("T01")) == 0o644


def test_nothing_is_generated_over_an_existing_file(tmp_path: Path) -> None:
    create_secret(tmp_path / "x.key", b"mine")
    with pytest.raises(FileExistsError):
        create_secret(tmp_path / "x.key", b"theirs")
    assert (tmp_path / "x.key").read_bytes() == b"mine"
    pki.init(tmp_path, ["T01"])
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert pki.init(tmp_path, ["T01"]) == []
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    with pytest.raises(pki.PkiError, match="already exists"):
        pki.Authority(pki.PkiPaths(tmp_path)).issue_client("T01")
    (tmp_path / "clients" / "T02.key").write_bytes(b"a key made elsewhere")
    with pytest.raises(pki.PkiError):
        pki.init(tmp_path, ["T02"])  # half a pair is not completed over
    assert (tmp_path / "clients" / "T02.key").read_bytes() == b"a key made elsewhere"


def test_revocation_is_seen_when_the_list_changes(tmp_path: Path) -> None:
    pki.init(tmp_path, ["T01", "T02"])
    paths = pki.PkiPaths(tmp_path)
    t1, t2 = paths.client_cert("T01").read_bytes(), paths.client_cert("T02").read_bytes()
    revocations = Revocations(paths.crl, paths.ca_cert)
    assert not revocations.revoked(t1)
    pki.Authority(paths).revoke_client("T01")
    assert revocations.revoked(t1) and not revocations.revoked(t2)
    pki.Authority(paths).issue_client("T01")
    assert not revocations.revoked(paths.client_cert("T01").read_bytes())
    assert revocations.revoked(t1)


def test_a_revocation_list_from_another_ca_is_refused(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    pki.init(ours, ["T01"])
    pki.init(theirs, ["T01"])
    paths = pki.PkiPaths(ours)
    cert = paths.client_cert("T01").read_bytes()
    revocations = Revocations(paths.crl, paths.ca_cert)
    pki.Authority(paths).revoke_client("T01")
    assert revocations.revoked(cert)
    forged = pki.Authority(pki.PkiPaths(theirs))
    forged.write_crl([])  # an empty list signed by another CA...
    paths.crl.write_bytes(pki.PkiPaths(theirs).crl.read_bytes())
    assert revocations.revoked(cert)  # ...does not lift the revocation


def request(kind: Any, **fields: Any) -> Any:
    return kind(**fields)


@pytest.mark.parametrize(
    ("principal", "method", "message", "allowed"),
    [
        (T1, "/windowpay.v1.Terminal/Pay", pb.PayRequest(terminal_id="E1T1"), True),
        (T1, "/windowpay.v1.Terminal/Pay", pb.PayRequest(terminal_id="E1T2"), False),
        (T1, "/windowpay.v1.Terminal/Refund", pb.RefundRequest(terminal_id="E1T2"), False),
        (T1, "/windowpay.v1.Terminal/WatchWindow",
            pb.WatchWindowRequest(terminal_id="E1T1", window_id="E1W2"), False),
        (T1, "/windowpay.v1.Terminal/GetOrder", pb.GetOrderRequest(order_id="E1-A"), True),
        (T1, "/windowpay.v1.Terminal/GetOrder", pb.GetOrderRequest(order_id="E2-A"), False),
        (T1, "/windowpay.v1.Receipts/GetReceipt", pb.GetReceiptRequest(order_id="E2-A"), False),
        (T1, "/windowpay.v1.BusinessGateway/CreateOrder", pb.CreateOrderRequest(), False),
        (T1, "/windowpay.v1.BackOffice/GetSettlement", pb.SettlementRequest(), False),
        (Principal("business", Role.BUSINESS), "/windowpay.v1.Terminal/Pay",
            pb.PayRequest(terminal_id="E1T1"), False),
        (Principal("business", Role.BUSINESS), "/windowpay.v1.BusinessGateway/WatchPayments",
            pb.WatchPaymentsRequest(subscriber_id="case-system"), True),
        (Principal("business", Role.BUSINESS), "/windowpay.v1.BusinessGateway/AckPayments",
            pb.AckPaymentsRequest(subscriber_id="other"), False),
        (Principal("auditor", Role.AUDITOR), "/windowpay.v1.BackOffice/GetSettlement",
            pb.SettlementRequest(), True),
        (Principal("auditor", Role.AUDITOR), "/windowpay.v1.BackOffice/SettleLateSuccess",
            pb.LateSuccessRequest(), False),
        (Principal("auditor", Role.AUDITOR), "/windowpay.v1.BusinessGateway/CancelOrder",
            pb.CancelOrderRequest(), False),
        (Principal("backoffice", Role.BACKOFFICE), "/windowpay.v1.BackOffice/SettleLateSuccess",
            pb.LateSuccessRequest(), True),
        (Principal("backoffice", Role.BACKOFFICE), "/windowpay.v1.Terminal/Refund",
            pb.RefundRequest(), False),
        (Principal("monitor", Role.MONITOR), "/grpc.health.v1.Health/Check", None, True),
        (Principal("monitor", Role.MONITOR), "/windowpay.v1.Terminal/GetOrder",
            pb.GetOrderRequest(order_id="E1-A"), False),
        (Principal("backoffice", Role.BACKOFFICE), "/windowpay.v1.Nope/Nope", None, False),
    ],
)  # fmt: skip
def test_the_table(principal: Principal, method: str, message: Any, allowed: bool) -> None:
    assert (denial(TABLE.get(method), principal, message, SCOPE) is None) is allowed


def test_every_rpc_of_the_contract_is_in_the_table() -> None:
    methods = {
        f"/{service.full_name}/{method.name}"
        for service in pb.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert methods <= set(TABLE)


def test_terminals_are_rate_limited_with_a_burst() -> None:
    gate = Gate(Limits(terminal_rate=20, terminal_burst=50))
    now = 100.0
    assert sum(gate.rate_ok(T1, now) for _ in range(60)) == 50
    assert gate.rate_ok(T1, now + 0.06)  # one token back after 1/20 s
    assert not gate.rate_ok(T1, now + 0.06)
    business = Principal("business", Role.BUSINESS)
    assert all(gate.rate_ok(business, now) for _ in range(1000))


def test_calls_and_streams_in_flight_are_bounded_per_principal() -> None:
    gate = Gate(Limits(terminal_calls=3, streams=2))
    assert gate.enter(T1, stream=True) is None
    assert gate.enter(T1, stream=True) is None
    assert "streams" in (gate.enter(T1, stream=True) or "")
    assert gate.enter(T1, stream=False) is None
    assert "calls" in (gate.enter(T1, stream=False) or "")
    other = Principal("E1T2", Role.TERMINAL, "E1W2", "E1")
    assert gate.enter(other, stream=False) is None  # each principal its own bound
    gate.leave(T1, stream=True)
    assert gate.enter(T1, stream=False) is None
    for stream in (True, False, False):
        gate.leave(T1, stream=stream)
    gate.leave(other, stream=False)
    assert gate.in_flight("E1T1") == (0, 0)


def test_pin_hashes_verify_only_the_pin(tmp_path: Path) -> None:
    stored = hash_pin("123456")
    assert "123456" not in stored and stored.startswith("scrypt$")
    assert pin_matches("123456", stored)
    assert not pin_matches("123457", stored)
    assert not pin_matches("١٢٣٤٥٦", stored)
    assert not pin_matches("123456", "garbage")


def test_dev_pins_are_made_once_0600_and_set_pin_replaces_one(tmp_path: Path) -> None:
    access = small_config().access
    made = ensure_dev_pins(access, tmp_path)
    assert made == sorted(access.supervisors)
    pins = json.loads((tmp_path / "supervisors.json").read_text())
    hashes = json.loads((tmp_path / "supervisor_pins.json").read_text())
    assert mode(tmp_path / "supervisors.json") == mode(tmp_path / "supervisor_pins.json") == 0o600
    assert all(pin_matches(pins[s], hashes[s]) for s in pins)
    assert ensure_dev_pins(access, tmp_path) == []  # never again over the files
    supervisor = made[0]
    set_pin(tmp_path, supervisor, "24681357")
    hashes = json.loads((tmp_path / "supervisor_pins.json").read_text())
    assert pin_matches("24681357", hashes[supervisor])
    assert supervisor not in json.loads((tmp_path / "supervisors.json").read_text())
    with pytest.raises(ValueError):
        set_pin(tmp_path, supervisor, "12ab")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"access": {"principals": {"ops": "root"}}}, "unknown role"),
        ({"access": {"principals": {"E1T1": "auditor"}}}, "is a terminal"),
        ({"access": {"business_subscribers": ["a b"]}}, "subscriber"),
        ({"access": {"ca_file": "/x/ca.crt"}}, "go together"),
        ({"access": {"limits": {"streams": 0}}}, "at least 1"),
        ({"supervisors": {"SUP9": "NOWHERE"}}, "unknown service point"),
    ],
)
def test_a_bad_access_config_names_the_entry(change: dict[str, Any], message: str) -> None:
    data = small_config_data()
    data.update(change)
    with pytest.raises(ConfigError, match=message):
        parse_config(data, "test")


def test_production_certificates_are_used_as_given_and_nothing_is_made(tmp_path: Path) -> None:
    from dataclasses import replace

    from orchestrator.access.setup import server_tls

    made_elsewhere = tmp_path / "elsewhere"
    pki.init(made_elsewhere, [])
    paths = pki.PkiPaths(made_elsewhere)
    config = small_config()
    access = replace(
        config.access,
        ca_file=str(paths.ca_cert),
        server_cert_file=str(paths.server_cert),
        server_key_file=str(paths.server_key),
    )
    tls = server_tls(replace(config, access=access), tmp_path / "data", create=True)
    assert (tls.ca, tls.cert, tls.key, tls.crl) == (
        paths.ca_cert, paths.server_cert, paths.server_key, None,
    )  # fmt: skip
    assert not (tmp_path / "data").exists()


def test_clients_find_their_certificates_through_run_json(tmp_path: Path) -> None:
    from orchestrator.access import client
    from orchestrator.runfile import RunInfo

    root = tmp_path / "pki"
    pki.init(root, ["T05", "business"])
    with pytest.raises(client.IdentityError, match=r"run\.json"):
        client.resolve("T05", data_dir=tmp_path)
    RunInfo("127.0.0.1:1", "redis://x", "k", None, {}, 1, str(root), str(root / "ca.crt")).write(
        tmp_path
    )
    found = client.resolve("T05", data_dir=tmp_path)
    assert found.cert == (root / "clients/T05.crt").read_bytes()
    assert found.ca == (root / "ca.crt").read_bytes()
    given = client.resolve(
        "T05", data_dir=tmp_path, cert=root / "clients/business.crt",
        key=root / "clients/business.key",
    )  # fmt: skip
    assert given.cert == (root / "clients/business.crt").read_bytes()
    with pytest.raises(client.IdentityError, match="together"):
        client.resolve("T05", data_dir=tmp_path, cert=root / "clients/business.crt")
    with pytest.raises(client.IdentityError, match="T06"):
        client.resolve("T06", data_dir=tmp_path)


class FakeLockout:
    """The lockout port in memory (the real one is Redis, shared by front doors)."""

    def __init__(self, attempts: int = 5, broken: bool = False) -> None:
        self.attempts, self.broken = attempts, broken
        self.failures: dict[str, int] = {}
        self.locked: set[str] = set()

    def _check(self) -> None:
        if self.broken:
            from redis.exceptions import ConnectionError as RedisDown

            raise RedisDown("redis is down")

    async def locked_for(self, supervisor_id: str) -> int:
        self._check()
        return 900 if supervisor_id in self.locked else 0

    async def wrong(self, supervisor_id: str) -> bool:
        self._check()
        self.failures[supervisor_id] = self.failures.get(supervisor_id, 0) + 1
        if self.failures[supervisor_id] >= self.attempts:
            self.locked.add(supervisor_id)
            return True
        return False

    async def right(self, supervisor_id: str) -> None:
        self.failures.pop(supervisor_id, None)


async def test_supervisors_approve_only_their_point_and_lock_after_five_wrong(
    tmp_path: Path,
) -> None:
    from orchestrator.access.supervisors import Supervisors, Verdict

    access = small_config(prefix="E").access
    ensure_dev_pins(access, tmp_path)
    pin = json.loads((tmp_path / "supervisors.json").read_text())["E1S"]
    wrong = "000000" if pin != "000000" else "111111"
    lockout = FakeLockout()
    supervisors = Supervisors(access, tmp_path, lockout)  # type: ignore[arg-type]
    assert (await supervisors.approve("E1S", pin, "E1")).verdict is Verdict.OK
    assert (await supervisors.approve("E1S", pin, "E2")).verdict is Verdict.ELSEWHERE
    assert (await supervisors.approve("NOBODY", pin, "E1")).verdict is Verdict.UNKNOWN
    verdicts = [(await supervisors.approve("E1S", wrong, "E1")) for _ in range(5)]
    assert [v.verdict for v in verdicts] == [Verdict.WRONG] * 5
    assert "locked" in verdicts[-1].message and wrong not in verdicts[-1].message
    assert (await supervisors.approve("E1S", pin, "E1")).verdict is Verdict.LOCKED
    broken = Supervisors(access, tmp_path, FakeLockout(broken=True))  # type: ignore[arg-type]
    assert (await broken.approve("E1S", pin, "E1")).verdict is Verdict.UNAVAILABLE
