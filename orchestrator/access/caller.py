"""The principal of the call being served, for what the servicers show it.

The access interceptor sets it before a servicer runs; each gRPC call runs in a task of
its own, so the value is that call's. Outside a call (the console, tests of a
servicer) there is none, and nothing is hidden."""

from __future__ import annotations

from contextvars import ContextVar

from orchestrator.access.policy import masks_payer_names
from orchestrator.domain.masking import mask_name
from orchestrator.domain.principals import Principal

_CALLER: ContextVar[Principal | None] = ContextVar("windowpay_caller", default=None)


def serving(principal: Principal) -> None:
    """Called by the interceptor in the call's own task, once the caller is admitted."""
    _CALLER.set(principal)


def caller() -> Principal | None:
    return _CALLER.get()


def payer_name(name: str) -> str:
    """A payer's name as the caller may read it: masked for the roles that read names
    masked (the auditor), as the console shows them to its auditors."""
    principal = _CALLER.get()
    return mask_name(name) if principal is not None and masks_payer_names(principal) else name
