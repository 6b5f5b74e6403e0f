"""A ModelAdapter object, read once: what a reconcile needs of it, typed. Pure.

kopf's `Body`/`Meta` views are the model: the raw object (plain JSON-decoded dicts, as the API server sent
it) is read in one place, and everything after works with attributes. `AdapterRef` is the part that
identifies the object (for owner references, Events and patches); it is all that is left of an adapter that
vanished from the cluster while the log still holds its stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, cast

from modeladapter.fsm.events import SpecObserved, SpecRejected
from modeladapter.operator.api.spec import AdapterSpec, SpecProblem, parse_spec
from modeladapter.operator.api.status import StatusDocument

API_VERSION: Final = "model.aibrix.ai/v1alpha1"
KIND: Final = "ModelAdapter"
FINALIZER: Final = "adapter.model.aibrix.ai/finalizer"
PORT_LABEL: Final = "model.aibrix.ai/port"
DEFAULT_PORT: Final = 8000


@dataclass(frozen=True, slots=True)
class AdapterRef:
    """Which ModelAdapter: enough to name it in an owner reference, an Event or a patch."""

    uid: str
    namespace: str
    name: str
    resource_version: str = ""
    """Empty for an adapter known only from the log (it is gone from the cluster)."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def owner_reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True, slots=True)
class AdapterObject:
    """One ModelAdapter as the informer holds it."""

    ref: AdapterRef
    generation: int
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    finalizers: tuple[str, ...]
    deleting: bool
    """A deletionTimestamp is set."""
    deletion_timestamp: datetime | None
    spec: AdapterSpec | SpecProblem
    observed: SpecObserved
    """This generation of the spec as the event log records it (also when it is invalid)."""
    rejection: SpecRejected | None
    additional_config: Mapping[str, str] = field(repr=False)
    """`spec.additionalConfig` (it may hold a key: never shown by `repr`)."""
    base_model_label: str | None
    """`spec.baseModel`, where it is a string (the Service shows it when it is a valid label value)."""
    status: StatusDocument
    """`status` as the object has it now: what the projection is compared with."""

    @property
    def engine_port(self) -> int:
        raw = self.labels.get(PORT_LABEL, str(DEFAULT_PORT))
        return int(raw) if raw.isdigit() and 0 < int(raw) < 65536 else DEFAULT_PORT

    @property
    def has_finalizer(self) -> bool:
        return FINALIZER in self.finalizers


def read_adapter(raw: Mapping[str, Any]) -> AdapterObject:
    """The view of a raw ModelAdapter object (as the API returns it)."""
    metadata = _mapping(raw.get("metadata"))
    raw_spec = _mapping(raw.get("spec"))
    spec = parse_spec(raw)
    generation = int(metadata.get("generation") or 1)
    replicas = raw_spec.get("replicas")
    rejection: SpecRejected | None = None
    key_ref = spec.api_key_secret if isinstance(spec, AdapterSpec) else None
    if isinstance(spec, AdapterSpec):
        artifact_url, selector, base_model = spec.artifact_url, spec.pod_selector.render(), spec.base_model
    else:
        artifact_url, selector, base_model = str(raw_spec.get("artifactURL", ""))[:2048], "", None
        rejection = SpecRejected(generation=generation, field=spec.field, rule=spec.rule, message=spec.message)
    observed = SpecObserved(
        generation=generation,
        artifact_url=artifact_url,
        replicas=replicas if isinstance(replicas, int) and not isinstance(replicas, bool) else None,
        scheduler_name=str(raw_spec.get("schedulerName") or "default")[:253],
        pod_selector=selector,
        base_model=base_model,
        api_key_secret=key_ref.name if key_ref is not None else None,
        api_key_secret_key=key_ref.key if key_ref is not None else None,
    )
    additional = raw_spec.get("additionalConfig")
    base_model_label = raw_spec.get("baseModel")
    return AdapterObject(
        ref=AdapterRef(
            uid=str(metadata.get("uid", "")),
            namespace=str(metadata.get("namespace", "")),
            name=str(metadata.get("name", "")),
            resource_version=str(metadata.get("resourceVersion") or ""),
        ),
        generation=generation,
        labels={str(k): str(v) for k, v in (metadata.get("labels") or {}).items()},
        annotations={str(k): str(v) for k, v in (metadata.get("annotations") or {}).items()},
        finalizers=tuple(str(f) for f in metadata.get("finalizers") or ()),
        deleting=bool(metadata.get("deletionTimestamp")),
        deletion_timestamp=_parse_time(metadata.get("deletionTimestamp")),
        spec=spec,
        observed=observed,
        rejection=rejection,
        additional_config={str(k): str(v) for k, v in additional.items()} if isinstance(additional, Mapping) else {},
        base_model_label=base_model_label if isinstance(base_model_label, str) else None,
        status=cast(StatusDocument, _mapping(raw.get("status"))),
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
