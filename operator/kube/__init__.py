"""Kubernetes I/O: the REST client, informers, the objects the operator writes, and its install manifests.

* `client` — `Kube`, a thin asynchronous REST client with typed errors (`NotFound`, `Conflict`, ...);
* `informers` — list-then-watch caches with change callbacks;
* `services` — the adapter's headless Service and EndpointSlice, written only where they differ;
* `events` — core/v1 Events on a ModelAdapter, aggregated and rate-limited;
* `manifests` — the kustomize bases shipped as package data (`deploy/`), as `modeladapter manifests` prints them;
* `kustomize` — the renderer of the kustomize subset those bases use.
"""
