"""The domain's error tree; the front door maps each code to a gRPC status."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    UNAVAILABLE = "UNAVAILABLE"


class DomainError(Exception):
    code: ErrorCode = ErrorCode.FAILED_PRECONDITION

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(DomainError):
    code = ErrorCode.INVALID_ARGUMENT


class NotFound(DomainError):
    code = ErrorCode.NOT_FOUND


class FailedPrecondition(DomainError):
    code = ErrorCode.FAILED_PRECONDITION


class PermissionDenied(DomainError):
    code = ErrorCode.PERMISSION_DENIED


class AlreadyExists(DomainError):
    code = ErrorCode.ALREADY_EXISTS


class Unavailable(DomainError):
    """Something the answer needs cannot be reached now: the same request may be sent
    again."""

    code = ErrorCode.UNAVAILABLE


class IllegalTransition(FailedPrecondition):
    """An event that the state machine does not allow in the current state."""
