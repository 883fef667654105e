"""A time zone of the test's own making, so that a served process's local midnight can be
put a minute or two ahead while every clock keeps the real time.

The IANA zones move midnight in steps of an hour (a few in steps of 15 minutes), so a
test that needs the calendar date to change soon would wait up to an hour. Instead the
test writes a fixed-offset zone, offset to the minute, as a TZif file (RFC 8536) in a
directory of its own, and gives the served process that directory first on
PYTHONTZPATH. Its configuration then names the zone like any other: the service, its
Ray workers (which inherit the environment) and its record all compute local dates
through Python's zoneinfo, as they do in production."""

from __future__ import annotations

import os
import struct
import zoneinfo
from datetime import timedelta, timezone
from pathlib import Path

DAY_S = 86_400


def offset_for_midnight_at(utc_s: int) -> int:
    """The offset from UTC, in whole minutes within ±12 h, whose local midnight falls
    on `utc_s` (seconds since the epoch, a whole minute)."""
    if utc_s % 60:
        raise ValueError("midnight must fall on a whole minute")
    offset = -utc_s % DAY_S
    return offset - DAY_S if offset > DAY_S // 2 else offset


def posix_tz(offset_s: int) -> tuple[str, str]:
    """(abbreviation, POSIX TZ string) of a fixed offset; POSIX counts west as positive."""
    sign = "+" if offset_s >= 0 else "-"
    hours, minutes = divmod(abs(offset_s) // 60, 60)
    abbreviation = f"{sign}{hours:02d}{minutes:02d}"
    west = "-" if offset_s > 0 else ""
    return abbreviation, f"<{abbreviation}>{west}{hours}:{minutes:02d}"


def tzif(offset_s: int) -> bytes:
    """A version-2 TZif file for a zone that has always been at `offset_s` from UTC."""
    abbreviation, footer = posix_tz(offset_s)
    designations = abbreviation.encode() + b"\0"
    # isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt: no transitions, one type.
    counts = struct.pack(">6l", 0, 0, 0, 0, 1, len(designations))
    header = b"TZif2" + bytes(15) + counts
    data = struct.pack(">lBB", offset_s, 0, 0) + designations
    return header + data + header + data + b"\n" + footer.encode() + b"\n"


def write_zone(directory: Path, name: str, offset_s: int) -> None:
    """`name` (e.g. "Drill/Midnight") under `directory`, a zone at `offset_s` from UTC."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tzif(offset_s))


def tz_path_with(directory: Path) -> str:
    """PYTHONTZPATH for a process that should find the zones in `directory` first, and
    every other zone where it always did."""
    return os.pathsep.join([str(directory), *zoneinfo.TZPATH])


def fixed(offset_s: int) -> timezone:
    """The same zone in this process, without the file."""
    return timezone(timedelta(seconds=offset_s))
