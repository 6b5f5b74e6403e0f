"""A faithful Kubernetes API server emulator (aiohttp), for tests and `modeladapter sandbox`.

It behaves like kube-apiserver v1.20 for everything this operator, kubernetes-asyncio and kubectl use: one
global resourceVersion, watches with resume, bookmarks and 410 Expired, the status subresource split,
generation bumps, merge/JSON/strategic-merge patches, optimistic concurrency, finalizers, ownerReference garbage
collection, CRDs with schema defaulting and validation, discovery, Table output and `/openapi/v2` for kubectl.
Its fidelity is proven by the contract suite in `tests/sandbox/`, which runs unchanged against a real
kube-apiserver (`modeladapter.sandbox.realcluster`). `docs/sandbox-apiserver.md` lists what is supported.

Modules, from the pure core outwards: `errors` (Status objects), `meta` (names, times), `selectors`, `patches`,
`schema` (CRD OpenAPI), `resources`, `builtins` and `install_kinds` (per-kind rules; the latter for what
`deploy/` installs), `tables`, `discovery`, `store` (state and semantics), `server` (the HTTP edge and the
in-process `ApiServer`).
"""

from modeladapter.sandbox.apiserver.errors import ApiError
from modeladapter.sandbox.apiserver.server import ApiServer
from modeladapter.sandbox.apiserver.store import Store

__all__ = ["ApiError", "ApiServer", "Store"]
