"""The access layer without a server: the CA, the revocation list, the table, the
limits, supervisor PINs, and the config that names principals."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from prometheus_client import REGISTRY

from orchestrator.access import pki
from orchestrator.access.limits import Gate
from orchestrator.access.policy import TABLE, Scope, denial
from orchestrator.access.revocation import RevocationError, Revocations
from orchestrator.access.supervisors import ensure_dev_pins, hash_pin, pin_matches, set_pin
from orchestrator.config import ConfigError, parse_config
from orchestrator.domain.principals import Limits, Principal, Role
from orchestrator.files import create_secret
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from tests.support import bare_certificate, small_config, small_config_data

T1 = Principal("E1T1", Role.TERMINAL, "E1W1", "E1")
SCOPE = Scope({"case-system": "business", "other-system": "business2"})


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


def serial_of(pem: bytes) -> int:
    return x509.load_pem_x509_certificate(pem).serial_number


def refused(reason: str) -> float:
    value = REGISTRY.get_sample_value("windowpay_access_crl_refused_total", {"reason": reason})
    return value or 0.0


CA_KEYS = {
    "ec": lambda: ec.generate_private_key(ec.SECP384R1()),
    "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
    "ed448": ed448.Ed448PrivateKey.generate,
}


@pytest.mark.parametrize("kind", sorted(CA_KEYS))
async def test_a_list_signed_by_a_ca_of_any_key_type_is_taken(tmp_path: Path, kind: str) -> None:
    paths = pki.PkiPaths(tmp_path)
    pki.Authority.create(paths, key=CA_KEYS[kind]())
    pki.init(tmp_path, ["T01", "T02"])
    t1, t2 = (serial_of(paths.client_cert(t).read_bytes()) for t in ("T01", "T02"))
    revocations = Revocations(paths.crl, paths.ca_cert)
    assert not revocations.revoked(t1)
    pki.Authority(paths).revoke_client("T01")
    assert await revocations.refresh() == {t1}  # what the list newly revokes
    assert revocations.revoked(t1) and not revocations.revoked(t2)
    assert await revocations.refresh() == frozenset()  # unchanged: nothing read again
    pki.Authority(paths).issue_client("T01")
    assert not revocations.revoked(serial_of(paths.client_cert("T01").read_bytes()))
    assert revocations.revoked(t1)


async def test_a_list_that_goes_missing_or_bad_keeps_the_last_good_one(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    pki.init(ours, ["T01"])
    pki.init(theirs, ["T01"])
    paths = pki.PkiPaths(ours)
    t1 = serial_of(paths.client_cert("T01").read_bytes())
    revocations = Revocations(paths.crl, paths.ca_cert)
    pki.Authority(paths).revoke_client("T01")
    assert await revocations.refresh() == {t1}
    before = {reason: refused(reason) for reason in ("missing", "unreadable", "foreign")}
    good = paths.crl.read_bytes()
    paths.crl.unlink()  # gone: no silent amnesty
    assert await revocations.refresh() == frozenset() and revocations.revoked(t1)
    paths.crl.write_bytes(b"-----BEGIN X509 CRL-----\nnot a list\n-----END X509 CRL-----\n")
    assert await revocations.refresh() == frozenset() and revocations.revoked(t1)
    pki.Authority(pki.PkiPaths(theirs)).write_crl([])  # an empty list of another CA...
    paths.crl.write_bytes(pki.PkiPaths(theirs).crl.read_bytes())
    assert await revocations.refresh() == frozenset() and revocations.revoked(t1)  # ...no
    assert {r: refused(r) - before[r] for r in before} == {
        "missing": 1, "unreadable": 1, "foreign": 1,
    }  # fmt: skip
    paths.crl.write_bytes(good)
    await revocations.refresh()
    assert revocations.revoked(t1)


def test_revoke_after_the_list_went_missing_keeps_earlier_revocations(tmp_path: Path) -> None:
    pki.init(tmp_path, ["T01", "T02", "T03"])
    paths = pki.PkiPaths(tmp_path)
    t1, t2, t3 = (serial_of(paths.client_cert(t).read_bytes()) for t in ("T01", "T02", "T03"))
    pki.Authority(paths).revoke_client("T01")
    paths.crl.unlink()
    pki.Authority(paths).revoke_client("T02")
    assert Revocations(paths.crl, paths.ca_cert).serials == {t1, t2}
    # The register alone is enough: the list and the certificates set aside both gone.
    paths.crl.unlink()
    for kept in (paths.clients / "revoked").iterdir():
        kept.unlink()
    pki.init(tmp_path, [])  # a missing list is made again: with every revocation
    assert Revocations(paths.crl, paths.ca_cert).serials == {t1, t2}
    pki.Authority(paths).revoke_client("T03")
    assert Revocations(paths.crl, paths.ca_cert).serials == {t1, t2, t3}


def _signed_list(paths: pki.PkiPaths, number: int, serials: set[int]) -> bytes:
    """A list the CA really signed, as a careless operator (or a thief with the key's
    backup) might make or put back."""
    import datetime as dt

    from cryptography.hazmat.primitives import hashes, serialization

    key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), None)
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    now = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=1))
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    signed = builder.sign(key, hashes.SHA256())  # type: ignore[arg-type]  # the dev CA is EC
    return signed.public_bytes(serialization.Encoding.PEM)


async def test_an_older_list_or_one_that_drops_a_serial_is_refused(tmp_path: Path) -> None:
    pki.init(tmp_path, ["T01", "T02"])
    paths = pki.PkiPaths(tmp_path)
    t1, t2 = (serial_of(paths.client_cert(t).read_bytes()) for t in ("T01", "T02"))
    revocations = Revocations(paths.crl, paths.ca_cert)
    pki.Authority(paths).revoke_client("T01")
    assert await revocations.refresh() == {t1}
    older = paths.crl.read_bytes()
    pki.Authority(paths).revoke_client("T02")
    assert await revocations.refresh() == {t2}
    before = {reason: refused(reason) for reason in ("rollback", "dropped")}
    paths.crl.write_bytes(older)  # a backup put back: T02 would be let in again
    assert await revocations.refresh() == frozenset()
    assert revocations.serials == {t1, t2}
    paths.crl.write_bytes(_signed_list(paths, 99, {t1}))  # newer, but without T02
    assert await revocations.refresh() == frozenset()
    assert revocations.serials == {t1, t2}
    assert {r: refused(r) - before[r] for r in before} == {"rollback": 1, "dropped": 1}
    paths.crl.write_bytes(_signed_list(paths, 100, {t1, t2, 7}))  # a proper successor
    assert await revocations.refresh() == {7}


def test_without_a_list_to_start_with_the_front_door_does_not_start(tmp_path: Path) -> None:
    from dataclasses import replace

    from orchestrator.access.setup import server_tls

    pki.init(tmp_path, ["T01"])
    paths = pki.PkiPaths(tmp_path)
    paths.crl.unlink()
    with pytest.raises(RevocationError, match="does not start"):
        Revocations(paths.crl, paths.ca_cert)
    config = small_config()
    made_elsewhere = replace(
        config.access, ca_file=str(paths.ca_cert), server_cert_file=str(paths.server_cert),
        server_key_file=str(paths.server_key), crl_file=str(paths.crl),
    )  # fmt: skip
    with pytest.raises(RevocationError, match="missing"):
        server_tls(replace(config, access=made_elsewhere), tmp_path / "data", create=False)
    # the development PKI makes its (empty) list, so `make run` starts
    tls = server_tls(config, tmp_path / "dev", create=True)
    assert tls.crl is not None and Revocations(tls.crl, tls.ca).serials == frozenset()


@pytest.mark.parametrize(
    ("access", "problem"),
    [
        ({"ca_file": "/x/ca.crt", "server_cert_file": "/x/s.crt", "server_key_file": "/x/s.key"},
            "crl_file: certificates made elsewhere need"),
        ({"revocation": "off"}, 'must be "crl" or "none"'),
        ({"revocation": "none", "crl_file": "/x/crl.pem"}, "remove one"),
        ({"client_ca_file": "/x/issuing.crt"}, "goes with ca_file"),
        ({"trust_domain": "Windowpay Prod"}, "trust_domain"),
    ],
)  # fmt: skip
def test_revocation_is_never_off_unless_the_config_says_so(
    access: dict[str, Any], problem: str
) -> None:
    data = small_config_data()
    data["access"] = access
    with pytest.raises(ConfigError, match=problem):
        parse_config(data, "test")
    data["access"] = {k: v for k, v in access.items() if k != "crl_file"}
    if "ca_file" in access:
        data["access"]["revocation"] = "none"
        assert parse_config(data, "test").access.revocation == "none"


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


def test_an_auditor_is_limited_like_every_role() -> None:
    """A stolen read-only certificate once had 512 calls in flight and no rate at all."""
    gate = Gate(Limits(other_rate=5, other_burst=20, business_rate=100, business_burst=200))
    now = 100.0
    for name, role, burst in (
        ("auditor", Role.AUDITOR, 20),
        ("backoffice", Role.BACKOFFICE, 20),
        ("monitor", Role.MONITOR, 20),
        ("business", Role.BUSINESS, 200),
    ):
        principal = Principal(name, role)
        assert sum(gate.rate_ok(principal, now) for _ in range(burst + 10)) == burst, name
    assert gate.rate_ok(Principal("auditor", Role.AUDITOR), now + 0.2)  # 5/s: one back


async def test_settlements_are_computed_off_the_loop_two_at_a_time_per_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio
    import threading
    from types import SimpleNamespace

    import grpc

    from orchestrator.access.caller import serving
    from orchestrator.frontdoor import backoffice

    release = asyncio.Event()
    threads: list[bool] = []

    class Store:
        async def orders_of_days(self, points: Any, days: Any) -> list[bytes]:
            await release.wait()
            return []

    class Aborted(Exception):
        pass

    class Context:
        async def abort(self, code: grpc.StatusCode, message: str) -> None:
            raise Aborted(code, message)

    def settle(orders: Any, day: Any, zone: Any) -> list[Any]:
        threads.append(threading.current_thread() is threading.main_thread())
        return []

    door = SimpleNamespace(config=small_config(), reads=Store())
    servicer = backoffice.BackOfficeServicer(door)  # type: ignore[arg-type]
    request = pb.SettlementRequest(date="2026-12-07")

    async def as_auditor() -> Any:
        serving(Principal("auditor", Role.AUDITOR))
        return await servicer.GetSettlement(request, Context())  # type: ignore[arg-type]

    monkeypatch.setattr(backoffice, "settle", settle)
    calls = [asyncio.create_task(as_auditor()) for _ in range(3)]
    done, _ = await asyncio.wait(calls, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    [third] = done
    with pytest.raises(Aborted) as refused:
        third.result()
    assert refused.value.args[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    release.set()
    answers = await asyncio.gather(*(c for c in calls if c is not third))
    assert [a.date for a in answers] == ["2026-12-07"] * 2
    assert threads == [False, False]  # settled in worker threads


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


# ---- a certificate's binding to the deployment ------------------------------------------


def test_a_role_needs_this_cas_signature_and_the_deployments_uri(tmp_path: Path) -> None:
    from orchestrator.access.identity import Identities, identity_uri

    ours, theirs = pki.PkiPaths(tmp_path / "ours"), pki.PkiPaths(tmp_path / "theirs")
    pki.init(ours.root, ["backoffice"], "office.example")
    pki.init(theirs.root, ["backoffice"], "office.example")
    identities = Identities(ours.ca_cert, "office.example")
    issued = identities.of(ours.client_cert("backoffice").read_bytes())
    assert (issued.name, issued.unbound) == ("backoffice", None)
    uri = x509.UniformResourceIdentifier(identity_uri("office.example", "backoffice"))
    ours_ca, their_ca = pki.Authority(ours), pki.Authority(theirs)
    for pem, why in (
        (bare_certificate(ours_ca, "backoffice", [])[0], "no subjectAltName"),  # CN alone
        (theirs.client_cert("backoffice").read_bytes(), "not issued"),  # another CA's
        (bare_certificate(their_ca, "backoffice", [uri])[0], "not issued"),
        (bare_certificate(ours_ca, "backoffice", [x509.UniformResourceIdentifier(
            identity_uri("elsewhere.example", "backoffice"))])[0], "no subjectAltName"),
        (bare_certificate(ours_ca, "backoffice", [x509.UniformResourceIdentifier(
            identity_uri("office.example", "auditor"))])[0], "no subjectAltName"),  # not its CN
    ):  # fmt: skip
        presented = identities.of(pem)
        assert presented.name == "backoffice" and why in (presented.unbound or ""), why


def test_what_each_certificate_resolves_to_is_remembered_within_a_bound(
    tmp_path: Path,
) -> None:
    """The interceptor's memory of certificates: keyed by the certificate, so one name
    issued twice is two entries sharing the principal's one account; refusals are
    remembered with their answer; beyond `most`, the first remembered is forgotten."""
    from orchestrator.access.identity import Identities
    from orchestrator.access.interceptor import Caller, Callers, Refused
    from orchestrator.domain.principals import Directory

    paths = pki.PkiPaths(tmp_path)
    pki.init(tmp_path, ["E1T1", "stranger"])
    authority = pki.Authority(paths)
    first = paths.client_cert("E1T1").read_bytes()
    authority.revoke_client("E1T1")
    authority.issue_client("E1T1")
    second = paths.client_cert("E1T1").read_bytes()
    unbound = bare_certificate(authority, "E1T1", [])[0]
    config = small_config()
    gate = Gate(config.access.limits)
    directory = Directory(config.access, {"E1T1": "E1W1"}, {"E1W1": "E1"})
    callers = Callers(directory, Identities(paths.ca_cert, "windowpay"), gate, most=3)
    a, b = callers.of(first), callers.of(second)
    assert isinstance(a, Caller) and isinstance(b, Caller)
    assert a.principal == b.principal == T1 and a.serial != b.serial
    assert a.account is b.account is gate.account(T1)
    assert callers.of(first) is a  # remembered, not read again
    stranger = callers.of(paths.client_cert("stranger").read_bytes())
    assert isinstance(stranger, Refused)
    assert (stranger.reason, stranger.code.name) == ("unknown_principal", "PERMISSION_DENIED")
    assert stranger.message == "principal 'stranger' is not in this deployment's config"
    assert len(callers) == 3
    refused_one = callers.of(unbound)  # the fourth: `first` is forgotten
    assert isinstance(refused_one, Refused) and refused_one.reason == "unbound"
    assert refused_one.code.name == "UNAUTHENTICATED"
    assert refused_one.message.startswith("the certificate of 'E1T1' is not one of this")
    assert len(callers) == 3
    again = callers.of(first)  # read again (forgetting `second`), the same answer
    assert again is not a and again == a and len(callers) == 3


def test_init_binds_again_the_certificates_made_before_the_binding(tmp_path: Path) -> None:
    paths = pki.PkiPaths(tmp_path)
    pki.init(tmp_path, [])
    old, key = bare_certificate(pki.Authority(paths), "T01", [])
    create_secret(paths.client_key("T01"), key)
    paths.client_cert("T01").write_bytes(old)
    assert pki.init(tmp_path, ["T01"]) == ["T01 (bound again)"]
    from orchestrator.access.identity import Identities

    fresh = Identities(paths.ca_cert, pki.DEFAULT_TRUST_DOMAIN).of(
        paths.client_cert("T01").read_bytes()
    )
    assert fresh.unbound is None
    assert len(list((paths.clients / "unbound").glob("T01-*.crt"))) == 1
    assert pki.init(tmp_path, ["T01"]) == []


# ---- subscribers, names, logs, run.json, the PIN prompt -----------------------------------


def test_each_subscriber_id_is_bound_to_one_business_principal() -> None:
    data = small_config_data()
    data["access"] = {
        "principals": {"erp": "business", "tax": "business", "audit": "auditor"},
        "subscribers": {"erp-events": "erp", "tax-events": "tax"},
    }
    access = parse_config(data, "test").access
    assert access.subscribers == {"erp-events": "erp", "tax-events": "tax"}
    scope = Scope(access.subscribers)
    erp, tax = Principal("erp", Role.BUSINESS), Principal("tax", Role.BUSINESS)
    rule = TABLE["/windowpay.v1.BusinessGateway/WatchPayments"]
    ack = TABLE["/windowpay.v1.BusinessGateway/AckPayments"]
    for principal, subscriber, allowed in (
        (erp, "erp-events", True), (erp, "tax-events", False),
        (tax, "tax-events", True), (tax, "erp-events", False),
    ):  # fmt: skip
        for table_rule, kind in ((rule, pb.WatchPaymentsRequest), (ack, pb.AckPaymentsRequest)):
            allowed_now = denial(table_rule, principal, kind(subscriber_id=subscriber), scope)
            assert (allowed_now is None) is allowed, (principal.name, subscriber)
    data["access"]["subscribers"] = {"erp-events": "audit"}
    with pytest.raises(ConfigError, match="not a business principal"):
        parse_config(data, "test")
    data["access"] = {"principals": data["access"]["principals"], "business_subscribers": ["x"]}
    with pytest.raises(ConfigError, match="several"):
        parse_config(data, "test")
    data["access"] = {"business_subscribers": ["erp-events"]}  # one business principal
    assert parse_config(data, "test").access.subscribers == {"erp-events": "business"}


def test_the_auditor_reads_payer_names_masked_as_in_the_console() -> None:
    import contextvars

    from orchestrator.access.caller import payer_name, serving
    from orchestrator.console.accounts import Role as StaffRole
    from orchestrator.console.scope import StaffScope

    def as_caller(principal: Principal | None) -> str:
        def read() -> str:
            if principal is not None:
                serving(principal)
            return payer_name("欧阳娜娜")

        return contextvars.Context().run(read)  # no caller left by another test

    console = StaffScope(StaffRole.AUDITOR).name("欧阳娜娜")
    assert console == "欧***"
    assert as_caller(Principal("auditor", Role.AUDITOR)) == console
    for reader in (Principal("backoffice", Role.BACKOFFICE), Principal("b", Role.BUSINESS), T1):
        assert as_caller(reader) == "欧阳娜娜"
    assert as_caller(None) == "欧阳娜娜"  # outside a call: the console, the record


def test_denied_calls_log_one_line_per_principal_and_reason_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from orchestrator.access.logs import ThrottledWarnings

    now = [100.0]
    logger = logging.getLogger("test.access.throttle")
    warnings = ThrottledWarnings(logger, interval_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.access.throttle"):
        for _ in range(1000):
            warnings.warning(("T01", "Pay"), "access denied", {"principal": "T01"})
        warnings.warning(("T02", "Pay"), "access denied", {"principal": "T02"})
        assert [r.principal for r in caplog.records] == ["T01", "T02"]  # type: ignore[attr-defined]
        now[0] += 61
        warnings.warning(("T01", "Pay"), "access denied", {"principal": "T01"})
    last = caplog.records[-1]
    assert last.suppressed == 999  # type: ignore[attr-defined]
    assert "999 more" in last.getMessage()


def test_run_json_is_0600_from_its_first_byte(tmp_path: Path) -> None:
    from orchestrator.runfile import NAME, RunInfo

    info = RunInfo("127.0.0.1:1", "redis://:secret@127.0.0.1:6379", "k", None, {}, 1)
    (tmp_path / NAME).write_text("{}")
    (tmp_path / NAME).chmod(0o644)  # left by an older windowpay
    old = os.umask(0)
    try:
        info.write(tmp_path)
    finally:
        os.umask(old)
    assert mode(tmp_path / NAME) == 0o600
    assert RunInfo.read(tmp_path) == info


def test_pos_refund_takes_the_pin_from_a_prompt_or_the_environment_never_argv(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import argparse

    from orchestrator import pos

    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        return "246810"

    monkeypatch.setattr(pos.getpass, "getpass", prompt)
    monkeypatch.delenv(pos.PIN_ENV, raising=False)
    parser = argparse.ArgumentParser()
    pos.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["pos", "refund", "E1-X", "--terminal", "E1T1", "--amount", "1",
                              "--supervisor", "E1S"])  # fmt: skip
    assert pos.supervisor_pin(args) == "246810" and asked == ["PIN of supervisor E1S: "]
    monkeypatch.setenv(pos.PIN_ENV, "135790")
    assert pos.supervisor_pin(args) == "135790" and len(asked) == 1
    args = parser.parse_args(["pos", "refund", "E1-X", "--terminal", "E1T1", "--amount", "1",
                              "--supervisor", "E1S", "--pin", "135790"])  # fmt: skip
    with pytest.raises(pos.PinOnCommandLine):
        pos.supervisor_pin(args)
    assert pos.run(args) == 2


def _two_office_access() -> tuple[Any, Scope]:
    """E1 in office EA; E2 and E3 in office EB; a backoffice and an auditor principal of
    each office beside the deployment-wide ones."""
    from orchestrator.access.setup import point_offices
    from tests.support import two_offices

    data = two_offices(small_config_data())
    data["access"]["principals"].update(
        {"backoffice-a": "backoffice", "auditor-b": "auditor", "backoffice-b": "backoffice"}
    )
    data["access"]["offices"] = {"backoffice-a": "EA", "auditor-b": "EB", "backoffice-b": "EB"}
    config = parse_config(data, "test")
    return config, Scope({}, point_offices(config))


def test_an_offices_principals_read_and_settle_that_office_only() -> None:
    from orchestrator.access.setup import directory

    config, scope = _two_office_access()
    people = directory(config)
    a, b = people.get("backoffice-a"), people.get("auditor-b")
    everyone = people.get("backoffice")
    assert a is not None and b is not None and everyone is not None
    assert (a.office, b.office, everyone.office) == ("EA", "EB", "")
    get_order = TABLE["/windowpay.v1.BusinessGateway/GetOrder"]
    by_terminal = TABLE["/windowpay.v1.Terminal/GetOrder"]
    receipt = TABLE["/windowpay.v1.Receipts/GetReceipt"]
    for rule in (get_order, by_terminal):
        assert rule.answer is not None
        ours = pb.Order(order_id="E1-X1", office_id="EA")
        theirs = pb.Order(order_id="E2-X1", office_id="EB")
        assert rule.answer(a, ours, scope) is None
        assert "not of office EA" in (rule.answer(a, theirs, scope) or "")
        assert rule.answer(b, theirs, scope) is None
        assert rule.answer(everyone, ours, scope) is None
        assert rule.answer(everyone, theirs, scope) is None
        # made before orders carried an office: where its service point is today
        assert rule.answer(a, pb.Order(order_id="E2-X2"), scope) is not None
        # stamped EA at a point since moved to EB: EA's money stays EA's
        assert rule.answer(a, pb.Order(order_id="E2-X3", office_id="EA"), scope) is None
    assert receipt.answer is not None
    assert receipt.answer(a, pb.Receipt(order_id="E3-X1"), scope) is not None
    assert receipt.answer(b, pb.Receipt(order_id="E3-X1"), scope) is None
    settlement = TABLE["/windowpay.v1.BackOffice/GetSettlement"]
    ask = pb.SettlementRequest
    assert denial(settlement, a, ask(date="2026-12-08", service_point_id="E1"), scope) is None
    assert "office EA" in (denial(settlement, a, ask(service_point_id="E2"), scope) or "")
    assert "office EA" in (denial(settlement, a, ask(), scope) or "")  # every point's
    assert denial(settlement, everyone, ask(), scope) is None
    late = TABLE["/windowpay.v1.BackOffice/SettleLateSuccess"]
    assert denial(late, a, pb.LateSuccessRequest(order_id="E1-X1"), scope) is None
    assert denial(late, a, pb.LateSuccessRequest(order_id="E2-X1"), scope) is not None


@pytest.mark.parametrize(
    ("offices", "message"),
    [
        ({"business": "EA"}, "not a backoffice or auditor principal"),
        ({"nobody": "EA"}, "not a backoffice or auditor principal"),
        ({"backoffice": "XX"}, "names office 'XX', which [[offices]] does not declare"),
    ],
)
def test_a_principals_office_must_be_declared(offices: dict[str, str], message: str) -> None:
    from tests.support import two_offices

    data = two_offices(small_config_data())
    data["access"]["offices"] = offices
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(data, "test")
