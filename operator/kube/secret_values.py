"""Reading a Secret's values by name: decoded, never logged, never kept by this module.

Only `get` of one named Secret in the adapter's own namespace: the operator's RBAC grants nothing more.
"""

from __future__ import annotations

import base64

from modeladapter.adapters.connections import api_key_problem
from modeladapter.fsm.events import SpecObserved
from modeladapter.operator.kube.client import SECRETS, KubeApi, NotFound


async def secret_data(kube: KubeApi, namespace: str, name: str) -> dict[str, str]:
    """The Secret's data, decoded; a value that is not UTF-8 text is left out (it is no credential we could
    send). Raises `NotFound` if there is no such Secret."""
    secret = await kube.get(SECRETS, namespace, name)
    data: dict[str, str] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            data[str(key)] = base64.b64decode(str(value)).decode()
        except (ValueError, UnicodeDecodeError):
            continue
    return data


class NoRecordedKey(Exception):
    """The Secret a log recorded for the API key is gone, or holds no key that could be sent."""


async def recorded_api_key(kube: KubeApi, namespace: str, spec: SpecObserved | None) -> str | None:
    """The API key from the Secret and key a log's `SpecObserved` recorded, read again (never stored). None if
    the log recorded none (no `apiKeySecretRef`, an inline key, a log older than the record); `NoRecordedKey`
    (saying why, never the value) if that Secret is gone or holds nothing that could be sent."""
    if spec is None or spec.api_key_secret is None:
        return None
    reference = f"Secret {namespace}/{spec.api_key_secret}"
    try:
        value = (await secret_data(kube, namespace, spec.api_key_secret)).get(spec.api_key_secret_key or "api-key")
    except NotFound:
        raise NoRecordedKey(f"{reference}, which held the API key, is gone") from None
    if value is None or api_key_problem(value) is not None:
        raise NoRecordedKey(f"{reference} holds no usable API key any more")
    return value
