"""Starting and stopping the console's HTTP server (wired by bootstrap)."""

from __future__ import annotations

import contextlib
import logging
import ssl
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from orchestrator.config import Config
from orchestrator.console.accounts import StaffBook, ensure_dev_accounts
from orchestrator.console.app import Commands, Console, ConsoleSettings, build_app
from orchestrator.console.pages import Office
from orchestrator.console.queries import ConsoleQueries
from orchestrator.files import create_secret

log = logging.getLogger(__name__)
STAFF_FILE = Path("pki") / "staff.json"  # under the data directory
DEV_PASSWORDS = "staff-dev-passwords.txt"


async def start_console(
    config: Config,
    pool: AsyncConnectionPool[Any],
    commands: Commands,
    staff_file: Path,
    stack: AsyncExitStack,
    *,
    settings: ConsoleSettings | None = None,
    tls: ssl.SSLContext | None = None,
) -> str:
    """Serve the console on the configured host and port, over TLS with `tls` (None:
    plain HTTP, for a TLS reverse proxy in front); returns its base URL."""
    first_sp = config.deployment.service_points[0]
    first_window = sorted(
        w for w, sp in config.deployment.window_service_point.items() if sp == first_sp.id
    )[0]
    place = config.deployment.places.place_of(first_sp.id)
    first_site = place.site_id if config.deployment.places.explicit else ""
    created = ensure_dev_accounts(
        staff_file, first_sp.id, first_window, place.office_id, first_site
    )
    if created:
        log.warning(
            "console: dev staff accounts written to %s, their passwords to %s "
            "(change them with `windowpay staff set-password`)",
            staff_file,
            staff_file.with_name(DEV_PASSWORDS),
        )
        _write_dev_passwords(staff_file, created)
    console = Console(
        ConsoleQueries(pool),
        StaffBook(staff_file),
        commands,
        settings or settings_of(config),
    )
    runner = web.AppRunner(build_app(console), access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    host, port = config.settings.console_host, config.settings.console_port
    site = web.TCPSite(runner, host, port, ssl_context=tls)
    await site.start()
    bound = runner.addresses[0][1] if port == 0 else port
    shown = "127.0.0.1" if host in ("127.0.0.1", "0.0.0.0", "") else host
    return f"{'https' if tls else 'http'}://{shown}:{bound}"


def settings_of(config: Config, **overrides: Any) -> ConsoleSettings:
    """The console's settings from the deployment's config (tests override a few)."""
    return ConsoleSettings(
        **{
            "zone": config.settings.zone,
            "playbook_s": playbook_s(config),
            "office": Office.of(config),
            "trusted_proxies": config.console.trusted_proxies,
            **overrides,
        }
    )


def playbook_s(config: Config) -> dict[str, float]:
    """By channel, how long after the pay call an attempt should have settled (the
    playbook's `final_by_s`, time scale applied): unresolved later, it needs a person."""
    return {channel.value: config.playbook(channel).final_by_s for channel in config.playbooks}


def _write_dev_passwords(staff_file: Path, passwords: dict[str, str]) -> None:
    """The generated passwords of the dev accounts, beside the accounts, 0600 from the
    first byte; only at the first start."""
    path = staff_file.with_name(DEV_PASSWORDS)
    lines = "".join(f"{name} {password}\n" for name, password in passwords.items())
    with contextlib.suppress(FileExistsError):
        create_secret(path, lines.encode())
