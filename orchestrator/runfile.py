"""`<data-dir>/run.json`: where a running `windowpay serve` listens, so that the other
commands (pos, reconcile, settlement) find it without being told.

It holds the Redis and PostgreSQL URLs with their passwords, so it is written 0600 from
its first byte (a new file beside it, renamed over it), whatever the umask."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from orchestrator.files import replace_file

NAME = "run.json"


@dataclass(frozen=True)
class RunInfo:
    grpc: str
    redis_url: str
    keys_dir: str
    config: str | None  # the config file served, None for the sample
    providers: dict[str, str]  # channel -> base URL in use
    pid: int
    pki_dir: str = ""  # the development PKI: clients/<principal>.crt and .key
    ca: str = ""  # the CA the front door's certificate is signed by
    database_url: str = ""  # the PostgreSQL record
    console: str = ""  # the staff console and payer lookup: https://host:port (or http://)

    def write(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        replace_file(data_dir / NAME, json.dumps(asdict(self), indent=2).encode(), mode=0o600)

    @classmethod
    def read(cls, data_dir: Path) -> RunInfo | None:
        try:
            return cls(**json.loads((data_dir / NAME).read_text()))
        except (OSError, ValueError, TypeError):
            return None


def forget(data_dir: Path) -> None:
    (data_dir / NAME).unlink(missing_ok=True)
