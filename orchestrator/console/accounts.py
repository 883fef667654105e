"""Staff accounts of the console: a role, a scope, and an argon2 password hash, kept in
one JSON file (`var/pki/staff.json`, mode 0600). Each account has a credential epoch,
raised whenever its password changes or it is disabled: a session opened under an
older epoch is over, whichever process changed the file."""

from __future__ import annotations

import fcntl
import functools
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from orchestrator.files import create_secret, replace_file

_hasher = PasswordHasher()
USERNAME_MAX = 64


class Role(StrEnum):
    CLERK = "clerk"  # their own window
    HEAD = "head"  # their own service point
    SITE = "site"  # a site head (站点负责人): the site's service points
    DIRECTOR = "director"  # a city office's director (车管所所长): the office
    AUDITOR = "auditor"  # an office, read-only, payer names masked
    PROVINCE = "province"  # the provincial supervisor (总队): every office, read-only


OFFICE_ROLES = (Role.DIRECTOR, Role.AUDITOR)  # belong to one office (--office)


@dataclass(frozen=True, slots=True)
class StaffAccount:
    username: str
    role: Role
    password_hash: str
    service_point_id: str = ""
    window_id: str = ""
    disabled: bool = False
    language: str = ""  # the console's language the account chose ("": the browser's)
    epoch: int = 0  # raised by every password change and by disabling
    office_id: str = ""  # a director's or auditor's office ("": made before offices)
    site_id: str = ""  # a site head's site

    def check_password(self, password: str) -> bool:
        try:
            return _hasher.verify(self.password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


@functools.cache
def _matches_nothing() -> str:
    return _hasher.hash(secrets.token_urlsafe(24))


def password_matches(account: StaffAccount | None, password: str) -> bool:
    """The account's password checked; with no account (or a disabled one) a hash that
    matches nothing is checked instead, so that both cost the same and the time taken
    does not tell which usernames exist. Slow on purpose (argon2): call it off the loop."""
    if account is None or account.disabled:
        with suppress(VerificationError, InvalidHashError):
            _hasher.verify(_matches_nothing(), password)
        return False
    return account.check_password(password)


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise ValueError("a password has at least 8 characters")
    return _hasher.hash(password)


def valid_username(username: str) -> bool:
    """Up to 64 letters, digits, '-' and '_', at least one letter or digit."""
    name = username.replace("-", "").replace("_", "")
    return len(username) <= USERNAME_MAX and name.isalnum()


def new_account(
    username: str,
    role: Role,
    password: str,
    service_point_id: str = "",
    window_id: str = "",
    *,
    office_id: str = "",
    site_id: str = "",
) -> StaffAccount:
    if not valid_username(username):
        raise ValueError(f"a username is 1 to {USERNAME_MAX} letters, digits, '-' and '_'")
    if role is Role.CLERK and not window_id:
        raise ValueError("a clerk needs a window (--window)")
    if role is Role.HEAD and not service_point_id:
        raise ValueError("a service-point head needs a service point (--service-point)")
    if role is Role.SITE and not site_id:
        raise ValueError("a site head needs a site (--site)")
    if office_id and role not in OFFICE_ROLES:
        raise ValueError("only a director or an auditor belongs to an office (--office)")
    if site_id and role is not Role.SITE:
        raise ValueError("only a site head belongs to a site (--site)")
    return StaffAccount(
        username,
        role,
        hash_password(password),
        service_point_id,
        window_id,
        office_id=office_id,
        site_id=site_id,
    )


class StaffBook:
    """The accounts file. Written whole through a temporary file created 0600; every
    change reads, changes and writes it under a lock (`staff.json.lock`), so that the
    console (a language chosen) and `windowpay staff` (a password, a disable) never
    write over each other's change."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, StaffAccount]:
        data = json.loads(self.path.read_text())
        return {
            a["username"]: StaffAccount(**{**a, "role": Role(a["role"])}) for a in data["accounts"]
        }

    def get(self, username: str) -> StaffAccount | None:
        return self.load().get(username)

    def save(self, accounts: dict[str, StaffAccount], *, create: bool = False) -> None:
        body = json.dumps({"accounts": [asdict(a) for a in accounts.values()]}, indent=2)
        if create:
            create_secret(self.path, (body + "\n").encode())
        else:
            replace_file(self.path, (body + "\n").encode(), mode=0o600)

    @contextmanager
    def _changing(self) -> Iterator[dict[str, StaffAccount]]:
        """The accounts to change, read under the file's lock and written back (if
        changed) before the lock is let go."""
        lock = self.path.with_name(self.path.name + ".lock")
        with lock.open("a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            accounts = self.load()
            before = dict(accounts)
            yield accounts
            if accounts != before:
                self.save(accounts)

    def add(self, account: StaffAccount) -> None:
        with self._changing() as accounts:
            if account.username in accounts:
                raise ValueError(f"staff account {account.username!r} exists")
            accounts[account.username] = account

    def update(
        self, username: str, *, password: str | None = None, disabled: bool | None = None
    ) -> None:
        """A new password, or disabled (True) or enabled again (False); what is not
        given stays. Either one ends the account's sessions."""
        with self._changing() as accounts:
            if username not in accounts:
                raise ValueError(f"no staff account {username!r}")
            account = accounts[username]
            if password is not None:
                account = replace(account, password_hash=hash_password(password))
            if disabled is not None:
                account = replace(account, disabled=disabled)
            if password is not None or disabled is not None:
                account = replace(account, epoch=account.epoch + 1)  # its sessions end
            accounts[username] = account

    def set_language(self, username: str, language: str) -> None:
        with self._changing() as accounts:
            if username not in accounts:
                raise ValueError(f"no staff account {username!r}")
            accounts[username] = replace(accounts[username], language=language)

    def set_office(self, username: str, office_id: str) -> None:
        """Places a director or auditor in an office: how an account made before the
        deployment had offices is given one (docs/CONSOLE.md). Its sessions end."""
        with self._changing() as accounts:
            if username not in accounts:
                raise ValueError(f"no staff account {username!r}")
            account = accounts[username]
            if account.role not in OFFICE_ROLES:
                raise ValueError(
                    f"{username!r} is a {account.role}: only a director or an "
                    "auditor belongs to an office"
                )
            accounts[username] = replace(account, office_id=office_id, epoch=account.epoch + 1)


DEV_ACCOUNTS = ("clerk", "head", "site", "director", "auditor", "province")


def ensure_dev_accounts(
    path: Path, service_point_id: str, window_id: str, office_id: str = "", site_id: str = ""
) -> dict[str, str] | None:
    """At first start, one account per role for the sample deployment, with generated
    passwords (returned, to print once): the clerk at `window_id`, the head of
    `service_point_id`, the site head of `site_id` (no site head without one), the
    director and auditor of `office_id`. Never over an existing file."""
    if path.exists():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [n for n in DEV_ACCOUNTS if n != "site" or site_id]
    passwords = {name: secrets.token_urlsafe(9) for name in names}
    sp, office = service_point_id, office_id
    accounts = {
        "clerk": new_account("clerk", Role.CLERK, passwords["clerk"], sp, window_id),
        "head": new_account("head", Role.HEAD, passwords["head"], sp),
        "director": new_account("director", Role.DIRECTOR, passwords["director"], office_id=office),
        "auditor": new_account("auditor", Role.AUDITOR, passwords["auditor"], office_id=office),
        "province": new_account("province", Role.PROVINCE, passwords["province"]),
    }
    if site_id:
        accounts["site"] = new_account("site", Role.SITE, passwords["site"], site_id=site_id)
    try:
        StaffBook(path).save(accounts, create=True)
    except FileExistsError:
        return None  # another process wrote it first: theirs stands
    return passwords
