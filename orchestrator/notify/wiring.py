"""The notification verifiers of every provider channel, from the channel registry."""

from __future__ import annotations

from pathlib import Path

from orchestrator.channels.registry import spec
from orchestrator.config import Config
from orchestrator.domain.states import Channel
from orchestrator.providers.http import HttpClient
from orchestrator.providers.notices import NoticeVerifier


def build_verifiers(
    config: Config, keys_dir: Path
) -> tuple[dict[Channel, NoticeVerifier], list[HttpClient]]:
    """A verifier per channel (every base_url resolved), and the HTTP clients they hold
    (WeChat Pay's fetches its platform certificates), for the caller to close."""
    verifiers: dict[Channel, NoticeVerifier] = {}
    clients = []
    for channel, settings in config.providers.items():
        client = HttpClient(settings.base_url)
        clients.append(client)
        verifiers[channel] = spec(channel).notifications(
            client, settings, keys_dir, config.notify.max_skew_s
        )
    return verifiers, clients
