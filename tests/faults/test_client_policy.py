"""What the fault tier's terminals resend, and what fails a fault test at once: the
resend policy every fault test goes through (load.retrying), checked without a stack."""

from __future__ import annotations

import grpc
import pytest

from tests.faults.load import Tally, retrying


class Answers:
    """A call that fails with the given codes, then answers "done"."""

    def __init__(self, *codes: grpc.StatusCode) -> None:
        self.codes = list(codes)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.codes:
            code = self.codes.pop(0)
            raise grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), code.name)
        return "done"


async def test_unavailable_and_no_answer_in_time_are_resent() -> None:
    call = Answers(grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    tally = Tally()
    assert await retrying(call, within=10, tally=tally) == "done"
    assert call.calls == 3
    assert (tally.retries, dict(tally.by_code)) == (2, {"UNAVAILABLE": 1, "DEADLINE_EXCEEDED": 1})


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS]
)
async def test_a_crashed_handler_fails_the_call_at_once(code: grpc.StatusCode) -> None:
    """UNKNOWN is what gRPC answers when a handler raised: a bug the fault tests must
    show, never a fault to ride out by sending the request again."""
    call = Answers(code)
    tally = Tally()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await retrying(call, within=10, tally=tally)
    assert raised.value.code() is code
    assert (call.calls, tally.retries) == (1, 0)
