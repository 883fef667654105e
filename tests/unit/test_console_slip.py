"""The slip after a payment: the payer's lookup link, as text and as a QR code."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from orchestrator.console.slip import console_of, lookup_link, slip
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb

RECEIPT = pb.Receipt(receipt_code="53012526", receipt_no="0000000042", check_code="K7Q2MX")


def test_the_link_carries_number_and_check_code() -> None:
    link = lookup_link("http://127.0.0.1:8470", RECEIPT)
    parts = urlsplit(link)
    assert (parts.netloc, parts.path) == ("127.0.0.1:8470", "/payer/receipt")
    assert parse_qs(parts.query) == {
        "code": ["53012526"], "no": ["0000000042"], "check": ["K7Q2MX"]
    }  # fmt: skip


def test_the_slip_shows_the_link_as_text_and_a_qr_code() -> None:
    text = slip("http://127.0.0.1:8470", RECEIPT)
    lines = text.splitlines()
    assert lines[0] == "receipt 53012526/0000000042  check code K7Q2MX"
    assert lines[1].endswith(lookup_link("http://127.0.0.1:8470", RECEIPT))
    drawing = lines[2:]
    assert len(drawing) >= 12  # a version-3+ symbol, two modules per line, with quiet zone
    assert len({len(line) for line in drawing if line}) == 1  # a square block of cells


def test_the_console_address_comes_from_run_json(tmp_path: Path) -> None:
    assert console_of(tmp_path) == ""
    (tmp_path / "run.json").write_text(
        json.dumps({"grpc": "127.0.0.1:1", "redis_url": "", "keys_dir": "", "config": None,
                    "providers": {}, "pid": 1, "console": "http://127.0.0.1:9"})
    )  # fmt: skip
    assert console_of(tmp_path) == "http://127.0.0.1:9"
