"""What can go wrong with the event log, as exceptions that say which stream and which version."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of the event log's errors."""


class ConcurrencyConflict(StoreError):
    """Another writer appended to the stream first. Re-read the stream and decide again; never blindly retry."""

    def __init__(self, stream_id: str, *, expected_version: int, actual_version: int) -> None:
        self.stream_id = stream_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        super().__init__(
            f"stream {stream_id}: expected version {expected_version}, but the log is at version {actual_version}"
        )


class CorruptEvent(StoreError):
    """An event read back from the log cannot be decoded into a known event."""

    def __init__(self, stream_id: str, version: int, detail: str) -> None:
        self.stream_id = stream_id
        self.version = version
        self.detail = detail
        super().__init__(f"stream {stream_id} version {version}: cannot decode the stored event: {detail}")


class DuplicateEvent(StoreError):
    """An event id in the batch is already in the log (event ids are unique; appends are not idempotent)."""

    def __init__(self, stream_id: str, detail: str) -> None:
        self.stream_id = stream_id
        super().__init__(f"stream {stream_id}: an event of this batch is already recorded: {detail}")


class StreamIdentityMismatch(StoreError):
    """An append names a stream with a different namespace/name than the one it was created with."""

    def __init__(self, stream_id: str, *, recorded: tuple[str, str], given: tuple[str, str]) -> None:
        self.stream_id = stream_id
        super().__init__(f"stream {stream_id} belongs to {recorded[0]}/{recorded[1]}, not {given[0]}/{given[1]}")


class SchemaTooNew(StoreError):
    """The database was migrated by a newer modeladapter; this version must not write to it."""
