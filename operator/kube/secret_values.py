"""Reading a Secret's values by name: decoded, never logged, never kept by this module.

Only `get` of one named Secret in the adapter's own namespace: the operator's RBAC grants nothing more.
"""

from __future__ import annotations

import base64

from modeladapter.operator.kube.client import SECRETS, KubeApi


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
