"""`windowpay staff add|set-password|disable|enable`: the console's accounts. Passwords are
read from the terminal (or stdin when it is not one), never from the command line."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from orchestrator.console.accounts import Role, StaffBook, new_account
from orchestrator.console.server import STAFF_FILE


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


def run(args: argparse.Namespace) -> int:
    book = StaffBook(args.data_dir / STAFF_FILE)
    try:
        if not book.path.exists():
            raise ValueError(f"{book.path} does not exist (start `windowpay serve` once)")
        if args.action == "add":
            account = new_account(
                args.username, Role(args.role), _password(), args.service_point, args.window
            )
            book.add(account)
        elif args.action == "set-password":
            book.update(args.username, password=_password())
        else:
            book.update(args.username, disabled=args.action == "disable")
    except ValueError as error:
        print(f"windowpay staff: {error}", file=sys.stderr)
        return 2
    print(f"windowpay staff: {args.action} {args.username}: done")
    return 0
