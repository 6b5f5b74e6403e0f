"""What an engine call can come to: typed results for success and a typed error taxonomy for failure.

The operator never compares strings. A load either returns a `LoadResult` (`Loaded`, or `AlreadyLoaded` with
the same path, which is success too), or raises one `EngineError` subclass whose `kind` is a stable name for the
event log and whose `retriable` says whether the same pod is worth another attempt. An unload of an adapter the
engine does not know returns `NotLoaded`, which counts as unloaded.

Retriability agrees with `modeladapter.fsm.retriable.classify_failure` (a test checks every kind against it):
only an unavailable engine and a timeout are retried on the same pod; everything the engine says about the
adapter itself, and authentication, moves on at once. A generic engine failure (`EngineRejected`) defers to
`classify_failure` on its status and text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from modeladapter.fsm.retriable import classify_failure


class LoadOutcome(StrEnum):
    LOADED = "Loaded"
    """The engine loaded the adapter now."""
    ALREADY_LOADED = "AlreadyLoaded"
    """The engine already had the adapter under this name, from the same path: nothing to do."""


class UnloadOutcome(StrEnum):
    UNLOADED = "Unloaded"
    """The engine removed the adapter now."""
    NOT_LOADED = "NotLoaded"
    """The engine did not know the adapter (vLLM's 404): it is unloaded all the same."""


class Verification(StrEnum):
    LOADED = "Loaded"
    """The engine lists the adapter (`/v1/models` id), from the expected path (`root`) where comparable."""
    MISSING = "Missing"
    """The engine does not list the adapter: never loaded, unloaded (by anyone), or the engine restarted. (vLLM
    keeps listing an adapter it has evicted from its caches.)"""
    OTHER_PATH = "OtherPath"
    """The engine lists the adapter under this name, but loaded from another path."""


@dataclass(frozen=True, slots=True)
class LoadResult:
    adapter: str
    lora_path: str
    """What the engine was asked to load: the translated path for direct engines, the artifact URL for the
    runtime sidecar."""
    outcome: LoadOutcome
    engine_message: str = ""


@dataclass(frozen=True, slots=True)
class UnloadResult:
    adapter: str
    outcome: UnloadOutcome
    """Both outcomes leave the engine without the adapter."""


@dataclass(frozen=True, slots=True)
class ServedModel:
    """One entry of `/v1/models`: a base model (`parent` None) or a LoRA adapter (`parent` = its base)."""

    id: str
    root: str | None
    parent: str | None

    @property
    def is_adapter(self) -> bool:
        return self.parent is not None


@dataclass(frozen=True, slots=True)
class EngineModels:
    """What an engine serves, as its `/v1/models` lists it."""

    models: tuple[ServedModel, ...]

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(self.models)

    @property
    def base_models(self) -> tuple[ServedModel, ...]:
        return tuple(model for model in self.models if not model.is_adapter)

    @property
    def adapters(self) -> tuple[ServedModel, ...]:
        return tuple(model for model in self.models if model.is_adapter)

    def find(self, model_id: str) -> ServedModel | None:
        return next((model for model in self.models if model.id == model_id), None)


class FailureKind(StrEnum):
    """Stable names of failures, for events, conditions and the log."""

    ALREADY_LOADED_OTHER_PATH = "AlreadyLoadedOtherPath"
    ARTIFACT_NOT_FOUND = "ArtifactNotFound"
    INCOMPATIBLE = "IncompatibleAdapter"
    UNAUTHORIZED = "Unauthorized"
    UNAVAILABLE = "EngineUnavailable"
    TIMEOUT = "Timeout"
    PROTOCOL = "ProtocolError"
    INVALID_REQUEST = "InvalidRequest"
    UNSUPPORTED = "Unsupported"
    REJECTED = "EngineRejected"


class EngineError(Exception):
    """A failed engine call. `str(error)` is safe to log and to record: it never holds an API key."""

    kind: ClassVar[FailureKind]
    always_retriable: ClassVar[bool] = False

    def __init__(self, message: str, *, status: int | None = None, engine_message: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        """The HTTP status the engine answered, or None when no answer came (or the call was never made)."""
        self.engine_message = engine_message
        """The engine's own error text, parsed out of whichever error shape it used."""

    @property
    def retriable(self) -> bool:
        """Worth another attempt on the same pod (after backoff)."""
        return self.always_retriable

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r})"


class AlreadyLoadedWithOtherPath(EngineError):
    """The engine has an adapter of this name, loaded from a different path."""

    kind = FailureKind.ALREADY_LOADED_OTHER_PATH

    def __init__(
        self,
        message: str,
        *,
        loaded_path: str | None,
        wanted_path: str,
        status: int | None = None,
        engine_message: str = "",
    ) -> None:
        super().__init__(message, status=status, engine_message=engine_message)
        self.loaded_path = loaded_path
        self.wanted_path = wanted_path


class ArtifactNotFound(EngineError):
    """The engine (or the sidecar) found no adapter at the path or URL: wrong path, no `adapter_config.json`."""

    kind = FailureKind.ARTIFACT_NOT_FOUND


class IncompatibleAdapter(EngineError):
    """The adapter does not fit the engine: rank above `--max-lora-rank`, a bias, another base model."""

    kind = FailureKind.INCOMPATIBLE


class Unauthorized(EngineError):
    """The engine refused the API key (401/403), or the sidecar the artifact credentials."""

    kind = FailureKind.UNAUTHORIZED


class EngineUnavailable(EngineError):
    """The engine could not be reached or said it is unavailable (refused, reset, 502/503/504, 429)."""

    kind = FailureKind.UNAVAILABLE
    always_retriable = True


class EngineTimeout(EngineError):
    """No complete answer within the time limit (connect 5 s, the whole call 30 s)."""

    kind = FailureKind.TIMEOUT
    always_retriable = True


class ProtocolError(EngineError):
    """The engine answered something this client does not understand."""

    kind = FailureKind.PROTOCOL


class InvalidRequest(EngineError):
    """The request itself is wrong (an empty or reserved name, a malformed artifact URL or port label)."""

    kind = FailureKind.INVALID_REQUEST


class Unsupported(EngineError):
    """What was asked cannot work on this engine as configured: an `s3://` artifact without the runtime
    sidecar, an engine kind this operator does not know, vLLM without runtime LoRA updating."""

    kind = FailureKind.UNSUPPORTED


class EngineRejected(EngineError):
    """Any other engine failure (vLLM's generic 500, out of memory, a crash while loading)."""

    kind = FailureKind.REJECTED

    @property
    def retriable(self) -> bool:
        return classify_failure(message=self.engine_message or self.message, status=self.status).retriable


# Not failures: the engine's way of saying "already there" or "already gone". The clients turn them into
# results; they only escape a client if a protocol is broken.
class AdapterAlreadyLoaded(EngineError):
    kind = FailureKind.ALREADY_LOADED_OTHER_PATH


class AdapterNotLoaded(EngineError):
    kind = FailureKind.PROTOCOL
