"""`windowpay office check`: reads a deployment's config as `windowpay serve` would,
and prints the hierarchy it found (province, offices, sites, service points, windows);
a config that is refused exits 1 with the message naming what is wrong."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from orchestrator.config import Config, ConfigError, load_config
from orchestrator.domain.places import SITE_KIND_NAMES


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    office = commands.add_parser("office", help="the deployment's city offices and their sites")
    what = office.add_subparsers(dest="office_command", required=True)
    check = what.add_parser(
        "check",
        help="validate the hierarchy of offices, sites and service points, and print it",
        description=(
            "Read the deployment's config as `windowpay serve` does and print the province, "
            "each office with its sites, service points and windows. Exits 1, naming the "
            "problem, when the config is refused (an unknown office, a service point in "
            "two sites, an id given twice ...)."
        ),
    )
    check.add_argument(
        "--config", type=Path, default=os.environ.get("WINDOWPAY_CONFIG") or None,
        help="deployment TOML (default: WINDOWPAY_CONFIG, else the shipped sample)",
    )  # fmt: skip
    check.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"windowpay office check: refused: {error}", file=sys.stderr)
        return 1
    print("\n".join(describe(config)))
    return 0


def describe(config: Config) -> list[str]:
    """The hierarchy as lines of text, indented by level, with a summary at the end."""
    deployment = config.deployment
    places = deployment.places
    windows = {sp.id: sp.windows for sp in deployment.service_points}
    names = {sp.id: sp.name for sp in deployment.service_points}
    terminals: dict[str, int] = {}
    for window in deployment.terminal_window.values():
        terminals[window] = terminals.get(window, 0) + 1
    lines = [f"{config.source}"]
    if places.explicit:
        lines.append(f"province {places.province or '(unnamed)'}")
    else:
        lines.append("no [[offices]]: one office holding every service point")
    for office in places.offices:
        label = f"office {office.id}" if places.explicit else "office (implicit)"
        city = f" ({office.city})" if office.city else ""
        lines.append(f"  {label}: {office.name}{city}, {len(office.sites)} site(s)")
        for site in office.sites:
            if places.explicit:
                kind = f"{site.kind.value} {SITE_KIND_NAMES[site.kind]}"
                lines.append(f"    site {site.id} [{kind}]: {site.name}")
            for sp in site.service_points:
                shown = ", ".join(
                    w if terminals.get(w) else f"{w} (no terminal)" for w in windows[sp]
                )
                lines.append(f"      service point {sp} {names[sp]}: windows {shown}")
    sites = len(places.sites) if places.explicit else 0
    lines.append(
        f"ok: {len(places.offices)} office(s), {sites} site(s), "
        f"{len(deployment.service_points)} service point(s), "
        f"{len(deployment.window_service_point)} window(s), "
        f"{len(deployment.terminal_window)} terminal(s)"
    )
    return lines
