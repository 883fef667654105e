"""Personal data shown to readers who may not see it whole."""

from __future__ import annotations


def mask_name(name: str) -> str:
    """The first character of a name, then one asterisk for each other: 王五 -> 王*."""
    return name[:1] + "*" * (len(name) - 1)
