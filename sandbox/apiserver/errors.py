"""Kubernetes `Status` errors, with the `reason`, `code`, message and `details` a real kube-apiserver uses.

Clients key on these exact values: kubectl turns `reason: NotFound` into "create" during `apply`, and
kubernetes-asyncio's watch turns an in-stream `code: 410` into a re-list. Every failure the emulator reports is
an `ApiError`, raised from the pure core and rendered once at the HTTP edge, so that a bad request can never
leave the store half-written.

Field errors (`FieldError`) follow `k8s.io/apimachinery/pkg/util/validation/field`: a path, a type, the bad
value and a detail, rendered as `spec.replicas: Unsupported value: 2: supported values: "1"`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

JsonDict = dict[str, Any]


class FieldErrorType(StrEnum):
    """The `reason` of a cause, and the words that start its message."""

    REQUIRED = "FieldValueRequired"
    INVALID = "FieldValueInvalid"
    NOT_SUPPORTED = "FieldValueNotSupported"
    FORBIDDEN = "FieldValueForbidden"
    DUPLICATE = "FieldValueDuplicate"
    TOO_LONG = "FieldValueTooLong"


_LEADS = {
    FieldErrorType.REQUIRED: "Required value",
    FieldErrorType.INVALID: "Invalid value",
    FieldErrorType.NOT_SUPPORTED: "Unsupported value",
    FieldErrorType.FORBIDDEN: "Forbidden",
    FieldErrorType.DUPLICATE: "Duplicate value",
    FieldErrorType.TOO_LONG: "Too long",
}
_VALUE_SHOWN = {FieldErrorType.INVALID, FieldErrorType.NOT_SUPPORTED, FieldErrorType.DUPLICATE}


class GoLiteral(str):
    """A value shown in a field error exactly as written (Go's `0x0` for an unset resourceVersion)."""


def go_value(value: object) -> str:
    """Render a value roughly as Go's `%#v` does in field errors: strings quoted, numbers bare."""
    if isinstance(value, GoLiteral):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return "null"
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of an object."""

    type: FieldErrorType
    path: str
    value: object = None
    detail: str = ""

    def body(self) -> str:
        text = _LEADS[self.type]
        if self.type in _VALUE_SHOWN:
            text += f": {go_value(self.value)}"
        if self.detail:
            text += f": {self.detail}"
        return text

    def __str__(self) -> str:
        return f"{self.path}: {self.body()}" if self.path else self.body()

    def cause(self) -> JsonDict:
        return {"reason": self.type.value, "message": self.body(), "field": self.path}


@dataclass
class ApiError(Exception):
    """A request the server refuses: rendered as a `Status` object with this HTTP code."""

    code: int
    reason: str
    message: str
    details: JsonDict = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def status(self) -> JsonDict:
        body: JsonDict = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }
        if not self.reason:
            del body["reason"]
        if not self.details and self.code not in (404, 405):
            del body["details"]
        return body


def _details(name: str, group: str, kind: str) -> JsonDict:
    details: JsonDict = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    if kind:
        details["kind"] = kind
    return details


def qualified(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{qualified(plural, group)} "{name}" not found', _details(name, group, plural))


def namespace_not_found(name: str) -> ApiError:
    return not_found("namespaces", "", name)


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        409, "AlreadyExists", f'{qualified(plural, group)} "{name}" already exists', _details(name, group, plural)
    )


def conflict(plural: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(plural, group)} "{name}": {why}',
        _details(name, group, plural),
    )


STALE = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(kind: str, group: str, name: str, errors: list[FieldError]) -> ApiError:
    """422 Invalid, as `apierrors.NewInvalid`: one message line, one cause per field error."""
    rendered = [str(e) for e in errors]
    summary = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    details = _details(name, group, kind)
    details["causes"] = [e.cause() for e in errors]
    return ApiError(422, "Invalid", f'{qualified(kind, group)} "{name}" is invalid: {summary}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def forbidden(plural: str, group: str, name: str, why: str) -> ApiError:
    subject = f'{qualified(plural, group)} "{name}"' if name else qualified(plural, group)
    return ApiError(403, "Forbidden", f"{subject} is forbidden: {why}", _details(name, group, plural))


def method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})


def unsupported_media_type(content_type: str, accepted: list[str]) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: {', '.join(accepted)}",
        {},
    )


class PageNotFound(Exception):
    """A path outside every served group/version: the real server answers with a plain-text 404."""


def unknown_resource() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message, {})


def too_large(message: str) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: {message}", {})


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized", {})


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}", {})
