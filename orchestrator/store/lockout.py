"""Supervisor PIN attempts counted in Redis, so that every front door sees the same
count and the same lock.

An attempt is counted before its PIN is checked, in one script that also reads the
lock: calls in flight at once get no more checks between them than the limit allows.
Two counts, each over a fixed window that starts at its first attempt: the supervisor's
(at `attempts` wrong PINs the supervisor is locked for `lockout_s`) and the terminal's
(past `terminal_attempts` the terminal is refused until its window ends, whichever
supervisor it names). A right PIN takes its own attempt back; wrong ones stay counted
until their window ends. Beside its count of attempts (wrong ones and those still being
checked) the supervisor has a count of wrong PINs alone, and only that one locks: one
wrong PIN among four right ones still in flight does not. An attempt past the count of
attempts while others are still being checked is refused ("busy") and not counted, so
refunds approved at once at several windows never lock their supervisor."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis

from orchestrator.store import keys

# KEYS: the supervisor's lock, the supervisor's count, the terminal's count.
# ARGV: attempts, window ms, lockout ms, terminal attempts.
# Answers {outcome, ms}: "go" (check the PIN), "locked" (ms left), "terminal" (ms left),
# "busy" (ms left of the count's window: the attempts it holds are wrong or in flight).
_BEGIN = """
local left = redis.call('PTTL', KEYS[1])
if left > 0 or left == -1 then return {'locked', left} end
local mine = redis.call('INCR', KEYS[3])
if mine == 1 then redis.call('PEXPIRE', KEYS[3], ARGV[2]) end
if mine > tonumber(ARGV[4]) then return {'terminal', redis.call('PTTL', KEYS[3])} end
local count = redis.call('INCR', KEYS[2])
if count == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
if count > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[2])
  redis.call('DECR', KEYS[3])
  return {'busy', redis.call('PTTL', KEYS[2])}
end
return {'go', count}
"""

# KEYS: the supervisor's lock, count of attempts, count of wrong PINs.
# ARGV: attempts, lockout ms, window ms. The attempt stays counted; the wrong PIN is
# counted (over the attempts' window) and the lock starts once wrong PINs alone reach
# the limit.
_WRONG = """
local wrong = redis.call('INCR', KEYS[3])
if wrong == 1 then
  local left = redis.call('PTTL', KEYS[2])
  redis.call('PEXPIRE', KEYS[3], left > 0 and left or ARGV[3])
end
if wrong >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
  redis.call('DEL', KEYS[2], KEYS[3])
  return 1
end
return redis.call('EXISTS', KEYS[1])
"""

# KEYS: the supervisor's count, the terminal's count: each takes the attempt back (a
# count whose window has ended is not made again).
_RIGHT = """
for _, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
end
return 0
"""


class Admission(StrEnum):
    GO = "go"  # counted: check the PIN now
    LOCKED = "locked"  # the supervisor is locked
    TERMINAL = "terminal"  # the terminal has used its attempts for this window
    BUSY = "busy"  # the supervisor's attempts are all wrong or in flight: not counted


@dataclass(frozen=True)
class Begun:
    admission: Admission
    wait_s: float  # for LOCKED and TERMINAL: how long until it lifts


class PinLockout:
    def __init__(
        self,
        redis: Redis,
        *,
        attempts: int,
        window_s: float,
        lockout_s: float,
        terminal_attempts: int | None = None,
    ) -> None:
        self._redis = redis
        self._attempts = attempts
        self._terminal_attempts = terminal_attempts or attempts
        self._window_ms = max(1, round(window_s * 1000))
        self._lockout_ms = max(1, round(lockout_s * 1000))
        self._begin = redis.register_script(_BEGIN)
        self._wrong = redis.register_script(_WRONG)
        self._right = redis.register_script(_RIGHT)

    async def begin(self, supervisor_id: str, terminal_id: str) -> Begun:
        """Count an attempt before its PIN is checked; GO means check it now. Anything
        else is refused and counted nowhere but where it says (TERMINAL: the terminal)."""
        outcome, ms = await self._begin(
            keys=[
                keys.pin_lock(supervisor_id),
                keys.pin_failures(supervisor_id),
                keys.pin_terminal(terminal_id),
            ],
            args=[self._attempts, self._window_ms, self._lockout_ms, self._terminal_attempts],
        )
        admission = Admission(outcome.decode() if isinstance(outcome, bytes) else outcome)
        return Begun(admission, 0.0 if admission is Admission.GO else max(int(ms), 0) / 1000)

    async def wrong(self, supervisor_id: str) -> bool:
        """The PIN of a counted attempt was wrong; True when the supervisor is locked."""
        locked = await self._wrong(
            keys=[
                keys.pin_lock(supervisor_id),
                keys.pin_failures(supervisor_id),
                keys.pin_wrong(supervisor_id),
            ],
            args=[self._attempts, self._lockout_ms, self._window_ms],
        )
        return bool(locked)

    async def right(self, supervisor_id: str, terminal_id: str) -> None:
        """The PIN of a counted attempt was right: the attempt is taken back."""
        await self._right(
            keys=[keys.pin_failures(supervisor_id), keys.pin_terminal(terminal_id)], args=[]
        )

    async def locked_for(self, supervisor_id: str) -> float:
        """Seconds the supervisor stays locked (0: not locked)."""
        left: int = await self._redis.pttl(keys.pin_lock(supervisor_id))
        if left == -1:
            return self._lockout_ms / 1000
        return max(left, 0) / 1000
