"""Adding a channel is its package, one registry entry and the proto enum value, then
`make proto` (docs/PROVIDERS.md, "Adding a channel"): in a copy of the source, a fourth
channel made from a copy of the Alipay package under another name is added by exactly
those edits, and then the config, the dev keys, the sandbox host, the adapter
factory, receipts, the console, the POS and the front door all take it, and a payment
goes through its sandbox gateway over HTTP."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NEW = "fakepay"

CHECK = """
import asyncio, tempfile, uuid
from pathlib import Path

import orchestrator
from orchestrator.channels.factory import build_providers
from orchestrator.channels.registry import check_auth_code, spec
from orchestrator.channels.sandboxes import start_sandboxes
from orchestrator.config import load_config
from orchestrator.console.app import CHANNELS as CONSOLE_CHANNELS
from orchestrator.domain.states import Channel
from orchestrator.frontdoor.convert import channel_of
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.pos import CHANNELS as POS_CHANNELS, sandbox_code
from orchestrator.providers.port import PayCall, TradeStatus
from orchestrator.receipts.render import CHANNELS as RECEIPT_NAMES

assert Path(orchestrator.__file__).parent == Path.cwd() / "orchestrator", orchestrator.__file__
new = Channel("FAKEPAY")
config = load_config()
assert config.playbook(new).confirm_window_s > 0
assert config.providers[new].merchant_id
assert RECEIPT_NAMES["FAKEPAY"] == spec(new).display_name == "假支付"
assert "FAKEPAY" in CONSOLE_CHANNELS
assert POS_CHANNELS["fakepay"] == pb.Channel.Value("FAKEPAY")
assert channel_of(pb.Channel.Value("FAKEPAY")) is new
code = sandbox_code("fakepay", "0000")
check_auth_code(new, code)


async def pay() -> None:
    keys = Path(tempfile.mkdtemp())
    sandboxes = await start_sandboxes(config, keys)
    providers = build_providers(config.with_base_urls(sandboxes.base_urls), keys)
    try:
        assert set(sandboxes.base_urls) == set(Channel) - {Channel.CASH}
        assert (keys / "fakepay" / "merchant_private.pem").is_file()
        trade = "FAKE_" + uuid.uuid4().hex[:16]
        call = PayCall(trade, code, 8000, "SP01", "T01", "test", 0)
        answer = await providers[new].pay(call)
        assert answer.status is TradeStatus.PAID, answer
        assert sandboxes.bank(new).trades()[0].out_trade_no == trade
    finally:
        await providers.close()
        await sandboxes.stop()


asyncio.run(pay())
print("ACCEPTED")
"""


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _changed(before: Path, after: Path) -> set[str]:
    """Files added or changed under `after` against `before` (relative paths)."""
    found: set[str] = set()

    def walk(compared: filecmp.dircmp[str], prefix: str) -> None:
        found.update(f"{prefix}{name}" for name in compared.right_only + compared.diff_files)
        for name, sub in compared.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(filecmp.dircmp(before, after, ignore=["__pycache__"]), "")
    return found


def test_a_fourth_channel_is_its_package_a_registry_entry_and_the_proto(
    tmp_path: Path,
) -> None:
    copy = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__")
    for part in ("orchestrator", "protos"):
        shutil.copytree(ROOT / part, copy / part, ignore=ignore)
    pristine = tmp_path / "pristine"
    shutil.copytree(copy, pristine)

    # 1. the package: Alipay's, renamed throughout
    package = copy / "orchestrator" / "channels" / NEW
    shutil.copytree(copy / "orchestrator" / "channels" / "alipay", package)
    for path in package.iterdir():
        text = path.read_text(encoding="utf-8")
        for old, new in (("alipay", NEW), ("Alipay", "FakePay"), ("ALIPAY", "FAKEPAY")):
            text = text.replace(old, new)
        path.write_text(text.replace("支付宝", "假支付"), encoding="utf-8")
    # 2. one registry entry
    registry = copy / "orchestrator" / "channels" / "registry.py"
    _replace(
        registry,
        "from orchestrator.channels.alipay.spec import SPEC as ALIPAY\n",
        "from orchestrator.channels.alipay.spec import SPEC as ALIPAY\n"
        "from orchestrator.channels.fakepay.spec import SPEC as FAKEPAY\n",
    )
    _replace(registry, "(WECHAT, ALIPAY, UNIONPAY)", "(WECHAT, ALIPAY, UNIONPAY, FAKEPAY)")
    # 3. the proto enum value, regenerated
    _replace(
        copy / "protos" / "windowpay" / "v1" / "windowpay.proto",
        "CASH = 4;",
        "CASH = 4;\n  FAKEPAY = 5;",
    )
    subprocess.run(
        [sys.executable, "-m", "orchestrator.protogen"], cwd=copy, check=True, capture_output=True
    )

    changed = _changed(pristine, copy)
    assert {name for name in changed if not name.startswith(f"orchestrator/channels/{NEW}")} == {
        "orchestrator/channels/registry.py",
        "protos/windowpay/v1/windowpay.proto",
        "orchestrator/domain/channel.py",  # generated from the proto by `make proto`
        "orchestrator/generated/windowpay/v1/windowpay_pb2.py",
        "orchestrator/generated/windowpay/v1/windowpay_pb2.pyi",
    }
    done = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=copy, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ACCEPTED")
