"""A joined process (`serve --join`) in a sandboxed deployment: its notification
listener's verifiers ask the sandboxes the deploying process runs, found in that
process's run.json in the shared data directory."""

from __future__ import annotations

from pathlib import Path

from orchestrator.bootstrap import sandbox_urls
from orchestrator.domain.states import Channel
from orchestrator.runfile import RunInfo


def test_the_sandboxes_of_the_deploying_process_are_read_from_its_run_file(
    tmp_path: Path,
) -> None:
    RunInfo(
        grpc="127.0.0.1:50051",
        redis_url="redis://127.0.0.1:6390",
        keys_dir=str(tmp_path / "keys"),
        config=None,
        providers={"WECHAT": "http://127.0.0.1:9101", "ALIPAY": "https://openapi.example"},
        pid=1,
    ).write(tmp_path)
    assert sandbox_urls(tmp_path, [Channel.WECHAT, Channel.UNIONPAY]) == {
        Channel.WECHAT: "http://127.0.0.1:9101"
    }


def test_without_a_deploying_process_none_is_known(tmp_path: Path) -> None:
    assert sandbox_urls(tmp_path, [Channel.WECHAT]) == {}
