"""`windowpay staff add|set-password|disable|enable`: the console's accounts. Passwords are
read from the terminal (or stdin when it is not one), never from the command line."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from orchestrator.config import ConfigError, load_config
from orchestrator.console.accounts import OFFICE_ROLES, Role, StaffBook, new_account
from orchestrator.console.server import STAFF_FILE
from orchestrator.domain.places import Places
from orchestrator.runfile import RunInfo


def add_parsers(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "staff", help="manage the console's staff accounts (DATA_DIR/pki/staff.json)"
    )
    parser.add_argument("--data-dir", type=Path, default=Path("var"), help="default: ./var")
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="a new account; asks for its password")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--service-point", default="", help="a head's (and a clerk's) point")
    add.add_argument("--window", default="", help="a clerk's window")
    add.add_argument("--office", default="", help="a director's or auditor's office")
    add.add_argument("--site", default="", help="a site head's site")
    add.add_argument("--config", type=Path, help="deployment TOML (default: as served)")
    office = actions.add_parser(
        "set-office", help="place a director or auditor in an office (ends its sessions)"
    )
    office.add_argument("username")
    office.add_argument("--office", required=True)
    office.add_argument("--config", type=Path, help="deployment TOML (default: as served)")
    password = actions.add_parser("set-password", help="asks for the new password")
    password.add_argument("username")
    disable = actions.add_parser("disable", help="the account can no longer sign in")
    disable.add_argument("username")
    enable = actions.add_parser("enable", help="a disabled account may sign in again")
    enable.add_argument("username")
    parser.set_defaults(handler=run)


def _password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise ValueError("the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\n")


def _places(args: argparse.Namespace) -> Places:
    """The hierarchy of the config given, else of the one the running deployment was
    started with, else of the sample."""
    info = RunInfo.read(args.data_dir)
    served = Path(info.config) if info and info.config else None
    return load_config(args.config or served).deployment.places


def _placed(args: argparse.Namespace, role: Role) -> None:
    """Raises ValueError when the office or site is not the config's, or when a
    director or auditor names none in a deployment that has offices."""
    places = _places(args)
    office, site = getattr(args, "office", ""), getattr(args, "site", "")
    if office and places.office(office) is None:
        known = ", ".join(o.id for o in places.offices)
        raise ValueError(f"unknown office {office!r}; the config has {known}")
    if site and places.site(site) is None:
        raise ValueError(f"unknown site {site!r}")
    if role in OFFICE_ROLES and places.explicit and not office:
        raise ValueError(f"a {role} belongs to one office in a deployment with offices (--office)")


def run(args: argparse.Namespace) -> int:
    book = StaffBook(args.data_dir / STAFF_FILE)
    try:
        if not book.path.exists():
            raise ValueError(f"{book.path} does not exist (start `windowpay serve` once)")
        if args.action == "add":
            _placed(args, Role(args.role))
            account = new_account(
                args.username, Role(args.role), _password(), args.service_point, args.window,
                office_id=args.office, site_id=args.site,
            )  # fmt: skip
            book.add(account)
        elif args.action == "set-office":
            _placed(args, Role.DIRECTOR)
            book.set_office(args.username, args.office)
        elif args.action == "set-password":
            book.update(args.username, password=_password())
        else:
            book.update(args.username, disabled=args.action == "disable")
    except (ValueError, ConfigError) as error:
        print(f"windowpay staff: {error}", file=sys.stderr)
        return 2
    print(f"windowpay staff: {args.action} {args.username}: done")
    return 0
