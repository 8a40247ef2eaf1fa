"""The exceptions Tideline raises; every one derives from TidelineError."""

from typing import Literal


class TidelineError(Exception):
    """Base of every error Tideline raises on purpose."""


class SchemaError(TidelineError):
    """A schema file or catalog entry is missing or invalid."""


DecodeReason = Literal[
    "not_single_object", "truncated", "unknown_fingerprint", "incompatible", "malformed"
]


class DecodeError(TidelineError):
    """Bytes that are not a record we can read; `reason` says which way they fail."""

    def __init__(self, reason: DecodeReason, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason: DecodeReason = reason


class EncodeError(TidelineError):
    """A record that does not fit its schema."""


class StackError(TidelineError):
    """The local Kafka/Redis stack cannot be started, reached or stopped."""


class ProjectError(TidelineError):
    """A project definition that cannot be loaded or does not make sense."""
