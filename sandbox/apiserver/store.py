"""The emulator's cluster state and every rule about changing it: the pure core behind the HTTP edge.

One `Store` holds all objects, one global, monotonic resourceVersion (etcd's revision: every write, a deletion
included, gets the next number), and a bounded history of changes per resource, from which watches resume.
Every operation is synchronous and either completes or raises an `ApiError` before touching anything, so a
bad request never leaves the store half-written; the aiohttp layer (`server.py`) only parses requests, calls
these methods and streams the changes they announce.

What a write does, in kube-apiserver's order: decode and check the body's shape, convert to the stored form,
apply the kind's defaults, validate (422 with field causes), check optimistic concurrency (409 on a stale
resourceVersion, 422 for a custom resource PUT without one), split the status subresource from the main
resource, bump `metadata.generation` only on spec changes, skip no-op writes (no new resourceVersion, no
event), then store and announce the change to the watchers.

Deletion follows the registry's rules: finalizers and graceful deletion (pods with a node) set
`deletionTimestamp` and keep the object; removing the last finalizer deletes it; `propagationPolicy`
Foreground and Orphan add their finalizers. The background controllers that a real cluster runs in
kube-controller-manager and the apiextensions server (ownerReference garbage collection, namespace cleanup,
CRD instance cleanup) are `run_controllers`, which the server calls shortly after each write.
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from modeladapter.sandbox.apiserver import errors
from modeladapter.sandbox.apiserver.builtins import (
    BUILTIN_TYPES,
    CRD_CLEANUP_FINALIZER,
    CRDS,
    NAMESPACES,
    SERVICE_CIDR,
    check_body_shape,
    crd_established_status,
)
from modeladapter.sandbox.apiserver.errors import ApiError, FieldError, FieldErrorType, GoLiteral
from modeladapter.sandbox.apiserver.install_kinds import INSTALL_TYPES
from modeladapter.sandbox.apiserver.meta import (
    generated_name,
    labels_field_errors,
    name_field_errors,
    qualified_name_errors,
    rfc3339,
)
from modeladapter.sandbox.apiserver.patches import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from modeladapter.sandbox.apiserver.resources import ResourceType, crd_served_types
from modeladapter.sandbox.apiserver.selectors import FieldSelector, LabelSelector

JsonDict = dict[str, Any]
Key = tuple[str, str]  # (namespace or "", name)

STANDARD_FINALIZERS = {"kubernetes", "orphan", "foregroundDeletion"}
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True)
class Change:
    """One write as watchers see it: `obj` is the new state (for DELETED, the last state at the deletion's RV)."""

    resource_version: int
    type: str  # ADDED, MODIFIED, DELETED
    obj: JsonDict
    previous: JsonDict | None


@dataclass
class Watcher:
    """A registered watch: which objects it wants, and where matching changes go (the HTTP stream's queue)."""

    resource: ResourceType
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    deliver: Callable[[str, JsonDict], None]
    closed: Callable[[], None] = lambda: None

    def matches(self, obj: JsonDict | None) -> bool:
        if obj is None:
            return False
        metadata = obj.get("metadata") or {}
        if self.namespace is not None and metadata.get("namespace", "") != self.namespace:
            return False
        return self.labels.matches(metadata.get("labels")) and self.fields.matches(obj, self.resource.field_labels)

    def translate(self, change: Change) -> tuple[str, JsonDict] | None:
        """The event this watcher sees for a change, if any; leaving the selector reads as DELETED."""
        now_in = self.matches(change.obj) if change.type != "DELETED" else False
        was_in = self.matches(change.previous)
        if change.type == "ADDED":
            return ("ADDED", change.obj) if now_in else None
        if change.type == "DELETED":
            return ("DELETED", change.obj) if self.matches(change.obj) else None
        if now_in and was_in:
            return "MODIFIED", change.obj
        if now_in:
            return "ADDED", change.obj
        if was_in and change.previous is not None:
            departed = copy.deepcopy(change.previous)
            departed["metadata"]["resourceVersion"] = change.obj["metadata"]["resourceVersion"]
            return "DELETED", departed
        return None


@dataclass
class History:
    """The retained changes of one storage: a watch may resume from any RV >= `since`."""

    since: int
    changes: deque[Change]


@dataclass
class ListPage:
    items: list[JsonDict]
    resource_version: int
    continue_token: str = ""
    remaining: int | None = None


@dataclass
class _Snapshot:
    resource_version: int
    items: list[JsonDict]


@dataclass
class DeleteOptions:
    propagation_policy: str | None = None
    grace_period_seconds: int | None = None
    precondition_uid: str | None = None
    precondition_resource_version: str | None = None
    orphan_dependents: bool | None = None

    @classmethod
    def parse(cls, body: object, query: dict[str, str]) -> DeleteOptions:
        source: dict[str, Any] = dict(body) if isinstance(body, dict) else {}
        for key in ("propagationPolicy", "gracePeriodSeconds", "orphanDependents"):
            if key in query:
                source[key] = query[key]
        policy = source.get("propagationPolicy")
        if policy is not None and policy not in ("Orphan", "Background", "Foreground"):
            raise errors.invalid(
                "DeleteOptions",
                "",
                "",
                [
                    FieldError(
                        FieldErrorType.NOT_SUPPORTED,
                        "propagationPolicy",
                        policy,
                        'supported values: "Foreground", "Background", "Orphan", "nil"',
                    )
                ],
            )
        grace = source.get("gracePeriodSeconds")
        try:
            grace_value = None if grace is None else int(grace)
        except (TypeError, ValueError):
            raise errors.bad_request(f"invalid gracePeriodSeconds: {grace!r}") from None
        orphan = source.get("orphanDependents")
        if isinstance(orphan, str):
            orphan = orphan.lower() == "true"
        preconditions = source.get("preconditions") or {}
        if not isinstance(preconditions, dict):
            raise errors.bad_request("preconditions must be an object")
        return cls(
            policy,
            grace_value,
            preconditions.get("uid"),
            preconditions.get("resourceVersion"),
            orphan if isinstance(orphan, bool) else None,
        )


class Store:
    """All objects of the emulated cluster, their history, the watchers, and the background controllers."""

    def __init__(
        self, *, clock: Callable[[], datetime] | None = None, history_limit: int = 1000, snapshot_limit: int = 256
    ) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._history_limit = history_limit
        self._snapshot_limit = snapshot_limit
        self.resource_version = 1
        self._objects: dict[str, dict[Key, JsonDict]] = {}
        self._history: dict[str, History] = {}
        self._watchers: dict[str, list[Watcher]] = {}
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._primary: dict[str, ResourceType] = {}  # the type whose shape is the stored one, per storage
        self._snapshots: OrderedDict[str, _Snapshot] = OrderedDict()
        self._allocated_ips: set[str] = set()
        self.on_change: Callable[[], None] = lambda: None
        for resource in (*BUILTIN_TYPES, *INSTALL_TYPES):
            self._register(resource)
        for name in SYSTEM_NAMESPACES:
            self.create(NAMESPACES, "", {"metadata": {"name": name}})
        for history in self._history.values():
            history.since = self.resource_version

    # --- the Cluster protocol the kinds' rules use ---------------------------------------------------------------

    def now(self) -> datetime:
        return self._clock()

    def allocate_cluster_ip(self) -> str:
        for host in SERVICE_CIDR.hosts():
            text = str(host)
            if int(host) - int(SERVICE_CIDR.network_address) < 10 or text in self._allocated_ips:
                continue
            return text
        raise errors.internal("failed to allocate a serviceIP: range is full")

    def cluster_ip_in_use(self, ip: str) -> bool:
        return ip in self._allocated_ips

    # --- resource types -------------------------------------------------------------------------------------------

    def _register(self, resource: ResourceType) -> None:
        self._types[(resource.group, resource.version, resource.plural)] = resource
        self._primary.setdefault(resource.storage_key, resource)
        self._objects.setdefault(resource.storage_key, {})
        self._history.setdefault(resource.storage_key, History(self.resource_version, deque()))
        self._watchers.setdefault(resource.storage_key, [])

    def resource_types(self) -> list[ResourceType]:
        return list(self._types.values())

    def resource_type(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def find_type(self, api_version: str, kind: str) -> ResourceType | None:
        return next((t for t in self._types.values() if t.api_version == api_version and t.kind == kind), None)

    def _sync_crd_types(self, crd: JsonDict) -> None:
        spec = crd.get("spec") or {}
        group, plural = spec.get("group", ""), (spec.get("names") or {}).get("plural", "")
        for key in [k for k, t in self._types.items() if not t.builtin and t.group == group and t.plural == plural]:
            del self._types[key]
        for resource in crd_served_types(crd):
            self._types[(resource.group, resource.version, resource.plural)] = resource
            self._primary[resource.storage_key] = resource
            if resource.storage_key not in self._objects:
                self._objects[resource.storage_key] = {}
                self._history[resource.storage_key] = History(self.resource_version, deque())
                self._watchers[resource.storage_key] = []

    def _drop_crd_types(self, crd: JsonDict) -> None:
        spec = crd.get("spec") or {}
        group, plural = spec.get("group", ""), (spec.get("names") or {}).get("plural", "")
        for key in [k for k, t in self._types.items() if not t.builtin and t.group == group and t.plural == plural]:
            del self._types[key]
        storage = f"{group}/{plural}"
        self._primary.pop(storage, None)
        for watcher in self._watchers.pop(storage, []):
            watcher.closed()
        self._objects.pop(storage, None)
        self._history.pop(storage, None)

    # --- reading --------------------------------------------------------------------------------------------------

    def _served(self, resource: ResourceType, stored: JsonDict) -> JsonDict:
        served = resource.from_storage(stored)
        return {
            "kind": resource.kind,
            "apiVersion": resource.api_version,
            **{k: v for k, v in served.items() if k not in ("kind", "apiVersion")},
        }

    def _lookup(self, resource: ResourceType, namespace: str, name: str) -> JsonDict:
        stored = self._objects.get(resource.storage_key, {}).get((namespace if resource.namespaced else "", name))
        if stored is None:
            raise errors.not_found(resource.plural, resource.group, name)
        return stored

    def get(self, resource: ResourceType, namespace: str, name: str) -> JsonDict:
        return self._served(resource, self._lookup(resource, namespace, name))

    def _matching(
        self, resource: ResourceType, namespace: str | None, labels: LabelSelector, fields: FieldSelector
    ) -> list[JsonDict]:
        probe = Watcher(resource, namespace, labels, fields, lambda _t, _o: None)
        objects = self._objects.get(resource.storage_key, {})
        return [objects[key] for key in sorted(objects) if probe.matches(objects[key])]

    def list_objects(
        self,
        resource: ResourceType,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        *,
        limit: int = 0,
        continue_token: str = "",
    ) -> ListPage:
        if continue_token:
            snapshot_id, offset = self._decode_continue(continue_token)
            snapshot = self._snapshots.get(snapshot_id)
            if snapshot is None:
                raise errors.expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start "
                    "a new list without the continue parameter, or use the continue token in this response to "
                    "retrieve the remainder of the results. Continuing with the provided token results in an "
                    "inconsistent list - objects that were created, modified, or deleted between the time the "
                    "first chunk was returned and now may show up in the list."
                )
            self._snapshots.move_to_end(snapshot_id)
        else:
            snapshot_id, offset = uuid.uuid4().hex, 0
            snapshot = _Snapshot(self.resource_version, self._matching(resource, namespace, labels, fields))
        items = snapshot.items[offset:]
        if limit <= 0 or len(items) <= limit:
            self._snapshots.pop(snapshot_id, None)
            return ListPage([self._served(resource, o) for o in items], snapshot.resource_version)
        self._snapshots[snapshot_id] = snapshot
        while len(self._snapshots) > self._snapshot_limit:
            self._snapshots.popitem(last=False)
        token = base64.urlsafe_b64encode(json.dumps({"s": snapshot_id, "o": offset + limit}).encode()).decode()
        remaining = len(items) - limit if labels.empty and fields.empty else None
        return ListPage([self._served(resource, o) for o in items[:limit]], snapshot.resource_version, token, remaining)

    @staticmethod
    def _decode_continue(token: str) -> tuple[str, int]:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
            return str(decoded["s"]), int(decoded["o"])
        except (ValueError, KeyError, TypeError):
            raise errors.bad_request(f"invalid continue token: continue key is not valid: {token}") from None

    # --- watching -------------------------------------------------------------------------------------------------

    def watch(self, watcher: Watcher, resource_version: str | None) -> list[tuple[str, JsonDict]]:
        """Register a watcher and return the events it must see first (synthetic ADDED, or retained history).

        Raises a 410 Expired `ApiError` when the resourceVersion is older than the retained window; the server
        sends it in the stream, as a real server does.
        """
        storage = watcher.resource.storage_key
        initial: list[tuple[str, JsonDict]] = []
        if resource_version in (None, "", "0"):
            for obj in self._matching(watcher.resource, watcher.namespace, watcher.labels, watcher.fields):
                initial.append(("ADDED", self._served(watcher.resource, obj)))
        else:
            start = parse_resource_version(resource_version)
            history = self._history[storage]
            if start < history.since:
                raise errors.expired(f"too old resource version: {start} ({history.since})")
            for change in history.changes:
                if change.resource_version > start:
                    event = watcher.translate(change)
                    if event is not None:
                        initial.append((event[0], self._served(watcher.resource, event[1])))
        self._watchers[storage].append(watcher)
        return initial

    def unwatch(self, watcher: Watcher) -> None:
        watchers = self._watchers.get(watcher.resource.storage_key, [])
        if watcher in watchers:
            watchers.remove(watcher)

    def watchers(self) -> Iterator[Watcher]:
        for watchers in self._watchers.values():
            yield from list(watchers)

    def compact(self) -> None:
        """Forget all history, as an etcd compaction does: watches from any older RV now get 410 Expired."""
        for history in self._history.values():
            history.changes.clear()
            history.since = self.resource_version
        self._snapshots.clear()

    def _record(self, resource: ResourceType, change: Change) -> None:
        storage = resource.storage_key
        history = self._history[storage]
        history.changes.append(change)
        while len(history.changes) > self._history_limit:
            history.since = history.changes.popleft().resource_version
        # One served object per (shape, event) for all watchers: the HTTP edge encodes each once.
        served: dict[tuple[int, str, int], JsonDict] = {}
        for watcher in list(self._watchers.get(storage, [])):
            event = watcher.translate(change)
            if event is not None:
                key = (id(watcher.resource), event[0], id(event[1]))
                if key not in served:
                    served[key] = self._served(watcher.resource, event[1])
                watcher.deliver(event[0], served[key])
        self.on_change()

    def _next_resource_version(self) -> int:
        self.resource_version += 1
        return self.resource_version

    # --- creating ---------------------------------------------------------------------------------------------------

    def _check_namespace(self, resource: ResourceType, namespace: str, *, creating: bool) -> None:
        if not resource.namespaced:
            return
        ns = self._objects[NAMESPACES.storage_key].get(("", namespace))
        if ns is None:
            raise errors.namespace_not_found(namespace)
        if creating and ns["metadata"].get("deletionTimestamp"):
            raise errors.ApiError(
                403,
                "Forbidden",
                f'{resource.group_resource} "{namespace}" is forbidden: unable to create new content in namespace '
                f"{namespace} because it is being terminated",
                {
                    "name": namespace,
                    "group": resource.group,
                    "kind": resource.plural,
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "message": f"namespace {namespace} is being terminated",
                            "field": "metadata.namespace",
                        }
                    ],
                },
            )

    def _metadata_errors(self, resource: ResourceType, obj: JsonDict) -> list[FieldError]:
        metadata = obj["metadata"]
        problems: list[FieldError] = []
        name = metadata.get("name")
        if not name:
            problems.append(
                FieldError(FieldErrorType.REQUIRED, "metadata.name", None, "name or generateName is required")
            )
        elif isinstance(name, str):
            problems.extend(name_field_errors(name, resource.name_rule))
        problems.extend(labels_field_errors(metadata.get("labels")))
        finalizers = [str(f) for f in metadata.get("finalizers") or []]
        for finalizer in finalizers:  # apimachinery's check names the list, not the item
            problems.extend(
                FieldError(FieldErrorType.INVALID, "metadata.finalizers", finalizer, p)
                for p in qualified_name_errors(finalizer)
            )
        if resource.builtin and not resource.group:  # core kinds add their own check, per item
            for index, finalizer in enumerate(finalizers):
                if "/" not in finalizer and finalizer not in STANDARD_FINALIZERS:
                    problems.append(
                        FieldError(
                            FieldErrorType.INVALID,
                            f"metadata.finalizers[{index}]",
                            finalizer,
                            "name is neither a standard finalizer name nor is it fully qualified",
                        )
                    )
        for index, owner in enumerate(metadata.get("ownerReferences") or []):
            path = f"metadata.ownerReferences[{index}]"
            if not isinstance(owner, dict):
                continue
            for key in ("apiVersion", "kind", "name", "uid"):
                if not owner.get(key):
                    detail = {
                        "apiVersion": "version must not be empty",
                        "kind": "kind must not be empty",
                        "name": "name must not be empty",
                        "uid": "uid must not be empty",
                    }[key]
                    problems.append(FieldError(FieldErrorType.INVALID, f"{path}.{key}", owner.get(key, ""), detail))
        return problems

    def _validate(self, resource: ResourceType, obj: JsonDict, old: JsonDict | None) -> None:
        problems = self._metadata_errors(resource, obj) + resource.validate(obj, old)
        if problems:
            name = obj["metadata"].get("name") or ""
            raise errors.invalid(resource.invalid_kind or resource.kind, resource.group, name, problems)

    def create(self, resource: ResourceType, namespace: str, body: object, *, dry_run: bool = False) -> JsonDict:
        obj = resource.to_storage(check_body_shape(copy.deepcopy(body), resource))
        metadata = obj["metadata"]
        if resource.namespaced:
            body_namespace = metadata.get("namespace") or ""
            if body_namespace and body_namespace != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        if metadata.get("resourceVersion"):
            raise ApiError(500, "", "resourceVersion should not be set on objects to be created", {})
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = generated_name(str(metadata["generateName"]))
        self._check_namespace(resource, namespace, creating=True)
        for server_owned in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "managedFields",
            "generation",
        ):
            metadata.pop(server_owned, None)
        if resource.status_subresource and not resource.builtin:
            obj.pop("status", None)
        obj = resource.default_create(obj, self)
        metadata = obj["metadata"]
        self._validate(resource, obj, None)
        key = (namespace if resource.namespaced else "", metadata["name"])
        if key in self._objects[resource.storage_key]:
            raise errors.already_exists(resource.plural, resource.group, metadata["name"])
        if resource.storage_key == CRDS.storage_key:
            self._check_crd_names(obj)
        if dry_run:
            return self._served(resource, obj)
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = rfc3339(self.now())
        if resource.has_generation:
            metadata["generation"] = 1
        if resource.storage_key == CRDS.storage_key:
            metadata["finalizers"] = [*(metadata.get("finalizers") or []), CRD_CLEANUP_FINALIZER]
            obj["status"] = crd_established_status(obj, metadata["creationTimestamp"])
        ip = (obj.get("spec") or {}).get("clusterIP") if resource.kind == "Service" and not resource.group else None
        if ip and ip != "None":
            if ip in self._allocated_ips:
                raise errors.invalid(
                    resource.kind,
                    resource.group,
                    metadata["name"],
                    [
                        FieldError(
                            FieldErrorType.INVALID,
                            "spec.clusterIPs",
                            [ip],
                            f"failed to allocated ip:{ip} with error:provided IP is already allocated",
                        )
                    ],
                )
            self._allocated_ips.add(ip)
        metadata["resourceVersion"] = str(self._next_resource_version())
        self._objects[resource.storage_key][key] = obj
        if resource.storage_key == CRDS.storage_key:
            self._sync_crd_types(obj)
        self._record(resource, Change(self.resource_version, "ADDED", obj, None))
        return self._served(resource, obj)

    def _check_crd_names(self, crd: JsonDict) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        for other in self._objects[CRDS.storage_key].values():
            other_spec = other.get("spec") or {}
            if other_spec.get("group") == spec.get("group") and (other_spec.get("names") or {}).get(
                "kind"
            ) == names.get("kind"):
                raise errors.invalid(
                    CRDS.kind,
                    CRDS.group,
                    crd["metadata"].get("name", ""),
                    [
                        FieldError(
                            FieldErrorType.INVALID, "spec.names.kind", names.get("kind"), "kind is already in use"
                        )
                    ],
                )

    # --- updating ---------------------------------------------------------------------------------------------------

    def update(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        body: object,
        *,
        subresource: str = "",
        dry_run: bool = False,
    ) -> tuple[JsonDict, bool]:
        """PUT. Returns (object, created): a kind that allows create-on-update creates a missing object."""
        obj = resource.to_storage(check_body_shape(copy.deepcopy(body), resource))
        metadata = obj["metadata"]
        if metadata.get("name", "") != name:
            raise errors.bad_request(
                f"the name of the object ({metadata.get('name', '')}) does not match the name on the URL ({name})"
            )
        if resource.namespaced:
            if metadata.get("namespace") and metadata["namespace"] != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            metadata["namespace"] = namespace
        key = (namespace if resource.namespaced else "", name)
        old = self._objects.get(resource.storage_key, {}).get(key)
        if old is None:
            if resource.allow_create_on_update and not subresource:
                metadata.pop("resourceVersion", None)
                return self.create(resource, namespace, resource.from_storage(obj), dry_run=dry_run), True
            raise errors.not_found(resource.plural, resource.group, name)
        return self._write(resource, old, obj, subresource=subresource, dry_run=dry_run), False

    def patch(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        patch_type: str,
        patch: object,
        *,
        subresource: str = "",
        dry_run: bool = False,
    ) -> JsonDict:
        if patch_type == STRATEGIC_MERGE_PATCH and not resource.builtin:
            raise errors.unsupported_media_type(patch_type, [JSON_PATCH, MERGE_PATCH, APPLY_PATCH])
        if patch_type == APPLY_PATCH:
            raise errors.unsupported_media_type(
                patch_type, [JSON_PATCH, MERGE_PATCH] + ([STRATEGIC_MERGE_PATCH] if resource.builtin else [])
            )
        old = self._lookup(resource, namespace, name)
        current = self._served(resource, old)
        if patch_type == MERGE_PATCH:
            if not isinstance(patch, dict):
                raise errors.bad_request("the merge patch must be a JSON object")
            patched = merge_patch(current, patch)
        elif patch_type == JSON_PATCH:
            patched = json_patch(current, patch)
        elif patch_type == STRATEGIC_MERGE_PATCH:
            if not isinstance(patch, dict):
                raise errors.bad_request("the strategic merge patch must be a JSON object")
            patched = strategic_merge_patch(current, patch, resource.merge_keys)
        else:
            raise errors.unsupported_media_type(patch_type, [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH])
        obj = resource.to_storage(check_body_shape(patched, resource))
        metadata = obj["metadata"]
        if metadata.get("name") != name:
            raise errors.bad_request(
                f"the name of the object ({metadata.get('name', '')}) does not match the name on the URL ({name})"
            )
        if resource.namespaced and metadata.get("namespace", namespace) != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        if not metadata.get("resourceVersion"):
            metadata["resourceVersion"] = old["metadata"]["resourceVersion"]
        return self._write(resource, old, obj, subresource=subresource, dry_run=dry_run)

    def _write(
        self, resource: ResourceType, old: JsonDict, obj: JsonDict, *, subresource: str, dry_run: bool
    ) -> JsonDict:
        metadata = obj["metadata"]
        name = old["metadata"]["name"]
        sent_version = metadata.get("resourceVersion")
        if not sent_version and not resource.allow_unconditional_update:
            shown = GoLiteral("0x0") if resource.unset_resource_version is None else resource.unset_resource_version
            raise errors.invalid(
                resource.invalid_kind or resource.kind,
                resource.group,
                name,
                [
                    FieldError(
                        FieldErrorType.INVALID, "metadata.resourceVersion", shown, "must be specified for an update"
                    )
                ],
            )
        if sent_version and sent_version != old["metadata"]["resourceVersion"]:
            raise errors.conflict(resource.plural, resource.group, name, errors.STALE)
        sent_uid = obj["metadata"].get("uid")
        if sent_uid and sent_uid != old["metadata"].get("uid"):
            # reported twice, as the real server does (common fields, then the kind's own metadata checks)
            immutable = FieldError(FieldErrorType.INVALID, "metadata.uid", sent_uid, "field is immutable")
            raise errors.invalid(resource.invalid_kind or resource.kind, resource.group, name, [immutable, immutable])
        new = self._merge_subresource(resource, old, obj, subresource)
        new_meta = new["metadata"]
        for owned in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "selfLink",
            "namespace",
            "name",
        ):
            if owned in old["metadata"]:
                new_meta[owned] = old["metadata"][owned]
            else:
                new_meta.pop(owned, None)
        new_meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if old["metadata"].get("deletionTimestamp"):
            added = [f for f in new_meta.get("finalizers") or [] if f not in (old["metadata"].get("finalizers") or [])]
            if added:
                listed = ", ".join(json.dumps(f) for f in added)
                raise errors.invalid(
                    resource.kind,
                    resource.group,
                    name,
                    [
                        FieldError(
                            FieldErrorType.FORBIDDEN,
                            "metadata.finalizers",
                            None,
                            f"no new finalizers can be added if the object is being deleted, found new finalizers "
                            f"[]string{{{listed}}}",
                        )
                    ],
                )
        new = resource.default_update(new, old, self)
        new_meta = new["metadata"]
        self._validate(resource, new, old)
        if resource.has_generation and self._spec_changed(resource, old, new):
            new_meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if not new_meta.get("finalizers"):
            new_meta.pop("finalizers", None)
        if new == old:
            return self._served(resource, old)
        if dry_run:
            return self._served(resource, new)
        if (
            new_meta.get("deletionTimestamp")
            and not new_meta.get("finalizers")
            and not new_meta.get("deletionGracePeriodSeconds")
        ):
            return self._remove(resource, old)
        new_meta["resourceVersion"] = str(self._next_resource_version())
        self._objects[resource.storage_key][self._key(resource, new)] = new
        if resource.storage_key == CRDS.storage_key:
            self._sync_crd_types(new)
        self._record(resource, Change(self.resource_version, "MODIFIED", new, old))
        return self._served(resource, new)

    @staticmethod
    def _key(resource: ResourceType, obj: JsonDict) -> Key:
        return (obj["metadata"].get("namespace", "") if resource.namespaced else "", obj["metadata"]["name"])

    @staticmethod
    def _merge_subresource(resource: ResourceType, old: JsonDict, obj: JsonDict, subresource: str) -> JsonDict:
        if subresource == "status":
            new = copy.deepcopy(old)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
            if resource.builtin and resource.kind == "Pod":
                # pods/status may still change labels and annotations in v1.20 (not ownerReferences).
                for meta_field in ("labels", "annotations"):
                    if meta_field in obj["metadata"]:
                        new["metadata"][meta_field] = obj["metadata"][meta_field]
                    else:
                        new["metadata"].pop(meta_field, None)
            new["metadata"]["resourceVersion"] = obj["metadata"].get("resourceVersion")
            return new
        if subresource:
            raise errors.not_found(resource.plural, resource.group, old["metadata"]["name"])
        new = obj
        if resource.status_subresource:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        return new

    @staticmethod
    def _spec_changed(resource: ResourceType, old: JsonDict, new: JsonDict) -> bool:
        skipped = {"metadata", "apiVersion", "kind"} | ({"status"} if resource.status_subresource else set())
        return {k: v for k, v in old.items() if k not in skipped} != {k: v for k, v in new.items() if k not in skipped}

    # --- deleting ---------------------------------------------------------------------------------------------------

    def delete(
        self, resource: ResourceType, namespace: str, name: str, options: DeleteOptions, *, dry_run: bool = False
    ) -> tuple[JsonDict, bool]:
        """DELETE. Returns (object, deleted now); a pending deletion keeps the object with a deletionTimestamp."""
        old = self._lookup(resource, namespace, name)
        meta = old["metadata"]
        if options.precondition_uid and options.precondition_uid != meta.get("uid"):
            raise errors.conflict(
                resource.plural,
                resource.group,
                name,
                f"Precondition failed: UID in precondition: {options.precondition_uid}, UID in "
                f"object meta: {meta.get('uid')}",
            )
        if options.precondition_resource_version and options.precondition_resource_version != meta["resourceVersion"]:
            raise errors.conflict(
                resource.plural,
                resource.group,
                name,
                f"Precondition failed: ResourceVersion in precondition: "
                f"{options.precondition_resource_version}, ResourceVersion in object meta: "
                f"{meta['resourceVersion']}",
            )
        grace = self._grace_period(resource, old, options)
        finalizers = list(meta.get("finalizers") or [])
        policy = options.propagation_policy
        if policy is None and options.orphan_dependents is not None:
            policy = "Orphan" if options.orphan_dependents else "Background"
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        if resource.storage_key == NAMESPACES.storage_key and ((old.get("spec") or {}).get("finalizers")):
            finalizers_pending = True
        else:
            finalizers_pending = bool(finalizers)
        if meta.get("deletionTimestamp"):
            pending_grace = int(meta.get("deletionGracePeriodSeconds") or 0)
            if grace is not None and pending_grace > 0 and grace < pending_grace:
                if grace == 0 and not finalizers:
                    return (self._served(resource, old) if dry_run else self._remove(resource, old)), True
                return self._mark_deleting(resource, old, grace, finalizers, dry_run), False
            return self._served(resource, old), False
        if finalizers_pending or (grace or 0) > 0:
            return self._mark_deleting(resource, old, grace or 0, finalizers, dry_run), False
        if dry_run:
            return self._served(resource, old), True
        return self._remove(resource, old), True

    @staticmethod
    def _grace_period(resource: ResourceType, obj: JsonDict, options: DeleteOptions) -> int | None:
        if not resource.graceful_deletion:
            return 0 if options.grace_period_seconds is not None else None
        spec = obj.get("spec") or {}
        period = options.grace_period_seconds
        if period is None:
            period = int(spec.get("terminationGracePeriodSeconds") or 0)
        if not spec.get("nodeName") or (obj.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
            period = 0
        return max(period, 0)

    def _mark_deleting(
        self, resource: ResourceType, old: JsonDict, grace: int, finalizers: list[str], dry_run: bool
    ) -> JsonDict:
        new = copy.deepcopy(old)
        meta = new["metadata"]
        meta["deletionTimestamp"] = rfc3339(self.now() + timedelta(seconds=grace))
        meta["deletionGracePeriodSeconds"] = grace
        if finalizers:
            meta["finalizers"] = finalizers
        if resource.storage_key == NAMESPACES.storage_key:
            new.setdefault("status", {})["phase"] = "Terminating"
        if dry_run:
            return self._served(resource, new)
        meta["resourceVersion"] = str(self._next_resource_version())
        self._objects[resource.storage_key][self._key(resource, new)] = new
        self._record(resource, Change(self.resource_version, "MODIFIED", new, old))
        return self._served(resource, new)

    def _remove(self, resource: ResourceType, old: JsonDict) -> JsonDict:
        gone = copy.deepcopy(old)
        if resource.graceful_deletion and not gone["metadata"].get("deletionTimestamp"):
            # graceful deletion with a zero period stamps the object before removing it
            gone["metadata"]["deletionTimestamp"] = rfc3339(self.now())
            gone["metadata"]["deletionGracePeriodSeconds"] = 0
        gone["metadata"]["resourceVersion"] = str(self._next_resource_version())
        del self._objects[resource.storage_key][self._key(resource, old)]
        if resource.kind == "Service" and not resource.group:
            self._allocated_ips.discard(str((old.get("spec") or {}).get("clusterIP")))
        self._record(resource, Change(self.resource_version, "DELETED", gone, old))
        if resource.storage_key == CRDS.storage_key:
            self._drop_crd_types(old)
        return self._served(resource, gone)

    # --- seeding and inspecting (tests, the sandbox) ------------------------------------------------------------------

    def type_for(self, obj: JsonDict) -> ResourceType:
        resource = self.find_type(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        if resource is None:
            raise errors.bad_request(f"no kind {obj.get('kind')!r} is registered for version {obj.get('apiVersion')!r}")
        return resource

    def objects(self, api_version: str, kind: str, namespace: str | None = None) -> list[JsonDict]:
        resource = self.find_type(api_version, kind)
        if resource is None:
            return []
        return [
            self._served(resource, o) for o in self._matching(resource, namespace, LabelSelector(), FieldSelector())
        ]

    # --- background controllers ---------------------------------------------------------------------------------------

    def _all(self) -> Iterator[tuple[ResourceType, JsonDict]]:
        for storage, objects in list(self._objects.items()):
            resource = self._primary.get(storage)
            if resource is None:
                continue
            for obj in list(objects.values()):
                yield resource, obj

    def run_controllers(self) -> bool:
        """One pass of garbage collection, namespace cleanup and CRD cleanup. True if anything changed."""
        before = self.resource_version
        self._collect_garbage()
        self._finish_namespaces()
        self._finish_crds()
        return self.resource_version != before

    def _collect_garbage(self) -> None:
        everything = list(self._all())
        live = {obj["metadata"]["uid"]: obj for _, obj in everything}
        dependents_of: dict[str, list[tuple[ResourceType, JsonDict]]] = {}
        for resource, obj in everything:
            for ref in obj["metadata"].get("ownerReferences") or []:
                dependents_of.setdefault(str(ref.get("uid")), []).append((resource, obj))
        for resource, obj in everything:
            refs = obj["metadata"].get("ownerReferences") or []
            if not refs or not self._exists(resource, obj):
                continue
            solid = [r for r in refs if r.get("uid") in live]
            dangling = [r for r in refs if r.get("uid") not in live]
            if not solid:
                if not obj["metadata"].get("deletionTimestamp"):
                    self._gc_delete(resource, obj)
            elif dangling and solid:
                kept = [r for r in refs if r not in dangling]
                self._set_owner_refs(resource, obj, kept)
        for resource, owner in everything:
            meta = owner["metadata"]
            if not meta.get("deletionTimestamp") or not self._exists(resource, owner):
                continue
            uid = meta["uid"]
            dependents = [(r, d) for r, d in dependents_of.get(uid, []) if self._exists(r, d)]
            if "orphan" in (meta.get("finalizers") or []):
                for dep_resource, dependent in dependents:
                    fresh = self._objects[dep_resource.storage_key][self._key(dep_resource, dependent)]
                    kept = [r for r in fresh["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
                    self._set_owner_refs(dep_resource, fresh, kept)
                self._drop_finalizer(resource, owner, "orphan")
            elif "foregroundDeletion" in (meta.get("finalizers") or []):
                blocking = False
                for dep_resource, dependent in dependents:
                    fresh = self._objects[dep_resource.storage_key][self._key(dep_resource, dependent)]
                    if not fresh["metadata"].get("deletionTimestamp"):
                        self._gc_delete(dep_resource, fresh)
                    if any(
                        r.get("uid") == uid and r.get("blockOwnerDeletion")
                        for r in fresh["metadata"].get("ownerReferences") or []
                    ) and self._exists(dep_resource, fresh):
                        blocking = True
                if not blocking:
                    self._drop_finalizer(resource, owner, "foregroundDeletion")

    def _exists(self, resource: ResourceType, obj: JsonDict) -> bool:
        return self._key(resource, obj) in self._objects.get(resource.storage_key, {})

    def _gc_delete(self, resource: ResourceType, obj: JsonDict) -> None:
        try:
            self.delete(
                resource,
                obj["metadata"].get("namespace", ""),
                obj["metadata"]["name"],
                DeleteOptions(propagation_policy="Background"),
            )
        except ApiError:
            pass  # already gone or changed: the next pass sees the new state

    def _set_owner_refs(self, resource: ResourceType, obj: JsonDict, refs: list[JsonDict]) -> None:
        current = self._objects[resource.storage_key][self._key(resource, obj)]
        updated = copy.deepcopy(current)
        if refs:
            updated["metadata"]["ownerReferences"] = refs
        else:
            updated["metadata"].pop("ownerReferences", None)
        self._write(resource, current, self._served_for_write(resource, updated), subresource="", dry_run=False)

    def _served_for_write(self, resource: ResourceType, stored: JsonDict) -> JsonDict:
        return resource.to_storage(self._served(resource, stored))

    def _drop_finalizer(self, resource: ResourceType, obj: JsonDict, finalizer: str) -> None:
        current = self._objects[resource.storage_key].get(self._key(resource, obj))
        if current is None:
            return
        updated = copy.deepcopy(current)
        updated["metadata"]["finalizers"] = [f for f in current["metadata"].get("finalizers") or [] if f != finalizer]
        self._write(resource, current, self._served_for_write(resource, updated), subresource="", dry_run=False)

    def _finish_namespaces(self) -> None:
        for ns in list(self._objects[NAMESPACES.storage_key].values()):
            if not ns["metadata"].get("deletionTimestamp"):
                continue
            name = ns["metadata"]["name"]
            remaining = False
            for resource, obj in list(self._all()):
                if resource.namespaced and obj["metadata"].get("namespace") == name and self._exists(resource, obj):
                    remaining = True
                    if not obj["metadata"].get("deletionTimestamp"):
                        # graceful, as the real controller: a pod on a node then waits for its (absent) kubelet
                        self._gc_delete(resource, obj)
            if remaining:
                continue
            current = self._objects[NAMESPACES.storage_key][("", name)]
            if (current.get("spec") or {}).get("finalizers"):
                finalized = copy.deepcopy(current)
                finalized["spec"]["finalizers"] = []
                finalized["metadata"]["resourceVersion"] = str(self._next_resource_version())
                self._objects[NAMESPACES.storage_key][("", name)] = finalized
                self._record(NAMESPACES, Change(self.resource_version, "MODIFIED", finalized, current))
                current = finalized
            if not current["metadata"].get("finalizers"):
                self._remove(NAMESPACES, current)

    def _finish_crds(self) -> None:
        for crd in list(self._objects[CRDS.storage_key].values()):
            meta = crd["metadata"]
            if not meta.get("deletionTimestamp") or CRD_CLEANUP_FINALIZER not in (meta.get("finalizers") or []):
                continue
            spec = crd.get("spec") or {}
            storage = f"{spec.get('group')}/{(spec.get('names') or {}).get('plural')}"
            served = [t for t in self._types.values() if t.storage_key == storage]
            objects = list(self._objects.get(storage, {}).values())
            if served:
                for obj in objects:
                    if not obj["metadata"].get("deletionTimestamp"):
                        self._gc_delete(served[0], obj)
            if self._objects.get(storage):
                continue
            self._drop_finalizer(CRDS, crd, CRD_CLEANUP_FINALIZER)

    def crd_terminating(self, resource: ResourceType) -> bool:
        for crd in self._objects[CRDS.storage_key].values():
            spec = crd.get("spec") or {}
            if spec.get("group") == resource.group and (spec.get("names") or {}).get("plural") == resource.plural:
                return bool(crd["metadata"].get("deletionTimestamp"))
        return False


def parse_resource_version(text: str) -> int:
    """A resourceVersion query parameter; v1.20 answers one that is not a number with a bare 500."""
    if not text.isdigit():
        raise ApiError(
            500,
            "",
            f'resourceVersion: Invalid value: "{text}": strconv.ParseUint: parsing "{text}": invalid syntax',
            {},
        )
    return int(text)
