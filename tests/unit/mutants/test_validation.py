"""Exact messages and values of the request-id checks (domain/validation.py), written for
the mutants `make mutate` found alive (docs/TESTING.md, "Mutation testing"): each
expected text is written by hand."""

from __future__ import annotations

import pytest

from orchestrator.domain.errors import InvalidArgument
from orchestrator.domain.validation import check_request_id, scoped_request_id


def test_a_missing_request_id_is_refused_by_name() -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_request_id("")
    assert str(refused.value) == "request_id is required"


def test_a_malformed_request_id_is_refused_with_its_first_80_characters() -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_request_id("-" + "a" * 99)
    assert str(refused.value) == (
        "request_id '-" + "a" * 79 + "' must be 1-64 letters, digits or . _ : - "
        "(starting with a letter or digit)"
    )


def test_a_request_id_is_scoped_by_its_principal_and_accepted_so() -> None:
    scoped = scoped_request_id("till-7", "r:42")
    assert scoped == "till-7:r:42"
    assert check_request_id(scoped) == "till-7:r:42"
    assert check_request_id("r.1") == "r.1"
