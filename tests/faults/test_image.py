"""The production image: the Dockerfile passes hadolint, is multi-stage, runs as a user
that is not root, installs exactly the locked pins, and its entry command serves and
passes its own HEALTHCHECK. No Docker engine runs here, so the entry command runs
outside a container, with the image's environment."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import tomli_w
import yaml

from orchestrator.embedded_redis import EmbeddedRedis, free_port
from tests.support import small_config_data

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
VENV_BIN = Path(sys.executable).parent


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    joined = text.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def final_stage(text: str) -> list[tuple[str, str]]:
    steps = instructions(text)
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def image_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in stage:
        if word == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def exec_form(stage: list[tuple[str, str]], word: str) -> list[str]:
    [rest] = [rest for w, rest in stage if w == word]
    if word == "HEALTHCHECK":
        rest = rest[rest.index("CMD ") + 4 :]
    command = json.loads(rest)
    assert isinstance(command, list), f"{word} must use the exec (JSON) form"
    return [str(part) for part in command]


def pins(lock: Path) -> dict[str, str]:
    found = {}
    for line in lock.read_text().splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            name, _, version = line.split(" ")[0].partition("==")
            found[name.lower()] = version
    return found


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [str(VENV_BIN / "hadolint"), str(DOCKERFILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_is_multi_stage_unprivileged_and_locked() -> None:
    text = DOCKERFILE.read_text()
    assert sum(word == "FROM" for word, _ in instructions(text)) >= 2
    [user] = [rest for word, rest in final_stage(text) if word == "USER"]
    assert user.split(":")[0] not in ("root", "0")
    assert "--require-hashes" in text and "requirements-runtime.lock" in text
    runtime, full = pins(ROOT / "requirements-runtime.lock"), pins(ROOT / "requirements.lock")
    assert "ray" in runtime and "pytest" not in runtime
    assert {name: full.get(name) for name in runtime} == runtime


@pytest.mark.timeout(420)
async def test_entry_command_serves_and_passes_its_healthcheck(
    tmp_path: Path, database_url: str
) -> None:
    stage = final_stage(DOCKERFILE.read_text())
    entry = exec_form(stage, "ENTRYPOINT") + exec_form(stage, "CMD")
    probe = exec_form(stage, "HEALTHCHECK")
    redis = EmbeddedRedis(tmp_path / "redis", appendfsync="always")
    redis.start()
    config = tmp_path / "windowpay.toml"
    config.write_text(tomli_w.dumps(small_config_data(prefix="I", service_points=1, windows=2)))
    env = {
        **os.environ,
        **image_env(stage),
        # What the container's runtime would give: the command on PATH, its own data
        # volume, Redis, a config; and loopback here instead of the container's network.
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "WINDOWPAY_DATA_DIR": str(tmp_path / "data"),
        "WINDOWPAY_HOST": "127.0.0.1",
        "WINDOWPAY_METRICS_HOST": "127.0.0.1",
        "WINDOWPAY_NOTIFY_HOST": "127.0.0.1",
        "WINDOWPAY_PORT": str(free_port()),
        "WINDOWPAY_METRICS_PORT": str(free_port()),
        "WINDOWPAY_CONFIG": str(config),
        "REDIS_URL": redis.url,
        "DATABASE_URL": database_url,
    }
    env.pop("RAY_ADDRESS", None)
    log = (tmp_path / "serve.log").open("wb")
    starts, process = 0, None
    tree: list[psutil.Process] = []
    try:
        started = time.monotonic()
        while True:
            if process is None or process.poll() is not None:
                # The restart policy the image is run with (compose: unless-stopped);
                # on a loaded machine Ray's start can time out.
                assert starts < 5, (tmp_path / "serve.log").read_text()[-3000:]
                starts += 1
                process = await asyncio.to_thread(
                    subprocess.Popen, entry, env=env, cwd=tmp_path, stdout=log,
                    stderr=subprocess.STDOUT,
                )  # fmt: skip
            tree = psutil.Process(process.pid).children(recursive=True) or tree
            healthy = await asyncio.to_thread(
                subprocess.run, probe, env=env, cwd=tmp_path, capture_output=True
            )
            if healthy.returncode == 0:
                break
            assert time.monotonic() - started < 300, "the HEALTHCHECK never passed"
            await asyncio.sleep(1)
        tree = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGTERM)  # the image's STOPSIGNAL
        assert await asyncio.to_thread(process.wait, 90) == 0
        _, alive = psutil.wait_procs(tree, timeout=30)
        assert alive == [], f"left running after the stop: {alive}"
        after = await asyncio.to_thread(
            subprocess.run, probe, env=env, cwd=tmp_path, capture_output=True
        )
        assert after.returncode != 0
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        for child in tree:
            if child.is_running():
                child.kill()
        log.close()
        redis.stop()


def test_compose_runs_windowpay_with_redis_and_prometheus() -> None:
    compose_file = ROOT / "deploy" / "compose.yaml"
    services = yaml.safe_load(compose_file.read_text())["services"]
    windowpay, redis, prometheus = (services[n] for n in ("windowpay", "redis", "prometheus"))
    assert (compose_file.parent / windowpay["build"]["context"] / "Dockerfile").samefile(DOCKERFILE)
    assert windowpay["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert "postgres" in services and "postgres" in windowpay["depends_on"]
    # Status 75 (Ray node lost) must lead to a restart.
    assert windowpay["restart"] in ("unless-stopped", "always", "on-failure")
    assert redis["command"][redis["command"].index("--appendfsync") + 1] == "always"
    assert prometheus["network_mode"] == "service:windowpay"
    for volume in prometheus["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("."):
            assert (compose_file.parent / source).is_file(), source
