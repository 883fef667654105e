"""The committed generated code must match what protogen makes from protos/ today."""

from pathlib import Path

from orchestrator.protogen import CHANNEL_PROTO, DOMAIN_CHANNEL, GENERATED, channel_enum, generate


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    fresh = generate(tmp_path)
    fresh_files = {p.relative_to(fresh): p.read_text() for p in fresh.rglob("*") if p.is_file()}
    committed = {
        p.relative_to(GENERATED): p.read_text()
        for p in GENERATED.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert committed.keys() == fresh_files.keys()
    stale = [str(name) for name, text in fresh_files.items() if committed[name] != text]
    assert not stale, f"stale generated files (run `make proto`): {stale}"


def test_the_domain_channel_enum_is_fresh() -> None:
    assert DOMAIN_CHANNEL.read_text() == channel_enum(CHANNEL_PROTO.read_text()), (
        "stale orchestrator/domain/channel.py (run `make proto`)"
    )


def test_the_domain_enum_is_the_proto_enum_without_its_unspecified_value() -> None:
    proto = """
enum Channel {
  CHANNEL_UNSPECIFIED = 0;
  WECHAT = 1;
  CASH = 4;  // paid at the window
}

enum OrderState {
  ORDER_STATE_UNSPECIFIED = 0;
  PAID = 1;
}
"""
    namespace: dict[str, object] = {}
    exec(channel_enum(proto), namespace)  # our own generated source
    channel = namespace["Channel"]
    assert [m.value for m in channel] == ["WECHAT", "CASH"]  # type: ignore[attr-defined]
