"""`windowpay pki init|issue NAME|revoke NAME` and `windowpay supervisors set-pin SUPnn`."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from orchestrator.access import pki, supervisors
from orchestrator.access.setup import directory, pki_dir
from orchestrator.config import Config, ConfigError, load_config
from orchestrator.runfile import RunInfo


def _config(args: argparse.Namespace) -> Config:
    info = RunInfo.read(args.data_dir)
    path = args.config or (Path(info.config) if info and info.config else None)
    return load_config(path)


def _root(args: argparse.Namespace, config: Config) -> Path:
    return pki_dir(config.access, args.data_dir)


def run_pki(args: argparse.Namespace) -> int:
    try:
        config = _config(args)
        root = _root(args, config)
        if args.action == "init":
            made = pki.init(root, directory(config).names(), config.access.trust_domain)
            print(f"{root}: made {', '.join(made) if made else 'nothing (all present)'}")
            return 0
        if args.action == "issue":
            if directory(config).get(args.name) is None:
                print(
                    f"windowpay pki: {args.name} is not a principal of the config; add it to "
                    "[access.principals] or [terminals] first",
                    file=sys.stderr,
                )
                return 2
            authority = pki.Authority(pki.PkiPaths(root))
            authority.issue_client(args.name, config.access.trust_domain)
            print(f"issued {pki.PkiPaths(root).client_cert(args.name)}")
            return 0
        serial = pki.Authority(pki.PkiPaths(root)).revoke_client(args.name)
        print(
            f"revoked {args.name} (serial {serial:x}); refused, and its open streams ended, "
            "within a second"
        )
        return 0
    except (ConfigError, pki.PkiError) as error:
        print(f"windowpay pki: {error}", file=sys.stderr)
        return 2


def run_supervisors(args: argparse.Namespace) -> int:
    try:
        config = _config(args)
    except ConfigError as error:
        print(f"windowpay supervisors: {error}", file=sys.stderr)
        return 2
    if args.supervisor not in config.access.supervisors:
        print(f"windowpay supervisors: {args.supervisor} is not in [supervisors]", file=sys.stderr)
        return 2
    if args.pin_stdin:
        pin = sys.stdin.readline().strip()
    else:
        pin = getpass.getpass(f"new PIN for {args.supervisor}: ")
        if getpass.getpass("again: ") != pin:
            print("windowpay supervisors: the two PINs differ", file=sys.stderr)
            return 2
    try:
        supervisors.set_pin(_root(args, config), args.supervisor, pin)
    except ValueError as error:
        print(f"windowpay supervisors: {error}", file=sys.stderr)
        return 2
    print(f"PIN of {args.supervisor} set; in force from the next refund")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=Path("var"), help="default: ./var")
    parser.add_argument("--config", type=Path, help="deployment TOML (default: as served)")


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tool = commands.add_parser(
        "pki",
        help="the development CA: certificates for the front door and every principal",
        description=(
            "init makes whatever is missing of the CA, the front door's certificate and one "
            "client certificate per principal of the config (never over an existing file); "
            "issue NAME makes one; revoke NAME puts it on the revocation list, which the "
            "front door honours within a second, ending the certificate's open streams."
        ),
    )
    actions = tool.add_subparsers(dest="action", required=True)
    actions.add_parser("init", help="make the missing CA and certificates")
    issue = actions.add_parser("issue", help="issue a client certificate")
    issue.add_argument("name", help="the principal: a terminal id, business, backoffice, ...")
    revoke = actions.add_parser("revoke", help="revoke a client certificate")
    revoke.add_argument("name")
    _common(tool)
    tool.set_defaults(handler=run_pki)

    sup = commands.add_parser("supervisors", help="supervisor PINs for refunds")
    sup_actions = sup.add_subparsers(dest="action", required=True)
    set_pin = sup_actions.add_parser("set-pin", help="set a supervisor's PIN (6-12 digits)")
    set_pin.add_argument("supervisor", help="e.g. SUP01")
    set_pin.add_argument("--pin-stdin", action="store_true", help="read the PIN from stdin")
    _common(sup)
    sup.set_defaults(handler=run_supervisors)
