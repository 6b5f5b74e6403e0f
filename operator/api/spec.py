"""A ModelAdapter's spec, read out of the raw object and checked: a typed `AdapterSpec`, or the first problem.

The CRD's schema rejects wrong types at the API server; what it cannot express is checked here, and a
problem names the field and the rule, so that the status condition can say exactly what to fix:

* `spec.artifactURL` — one of `huggingface://org/repo`, `hf://org/repo` (a repository id the Hub accepts: no
  revision, query or fragment), `s3://`, `gcs://`, `gs://`, `tos://` with a bucket, or an absolute path; never
  a control or invisible character, nor whitespace at either end (nor anywhere in a URL);
* `spec.podSelector` — must select something (an empty selector would match every pod in the namespace);
  expressions use `In`/`NotIn` with values or `Exists`/`DoesNotExist` without; label keys and values are
  what Kubernetes accepts (no pod can carry any other label: the adapter would wait for pods for ever);
* `spec.replicas` — omitted (every healthy matching pod) or at least 1;
* `spec.schedulerName` — a known policy (`modeladapter.fsm.scheduling`);
* `spec.updateStrategy` (ours, optional) — `maxUnavailable` and `maxSurge`, whole numbers, 0 or more, that let
  an update start (`maxUnavailable` 0 needs a surge: `maxSurge` above 0 and `replicas` set);
* `metadata.name` — usable as the LoRA name behind the AIBrix runtime, whose vLLM client sends the engine only
  1 to 100 letters, digits, `-` and `_` (aibrix 0.8.0, `openapi/engine/vllm.py`, `_validate_lora_request`; it
  refuses `qwen.lora` only after downloading it, and leaves the files behind); and usable as the adapter's
  Service name (a DNS-1035 label: at most 63 characters, starting with a letter). vLLM 0.32 itself accepts any
  non-empty name but its base model's (`entrypoints/openai/models/serving.py`,
  `_check_load_lora_adapter_request`), so on a direct engine only the Service rule matters; it is stricter
  than the runtime's, so every name that passes both works on every path. Our CRD refuses any other name
  (every AIBrix sample's passes); under AIBrix's CRD the operator refuses to load, with `InvalidSpec` here;
* `spec.apiKeySecretRef`, `spec.credentialsSecretRef` — a Secret name in the adapter's own namespace;
* the `model.aibrix.ai/port` label, if present — a port number (the engine's port).

Pure: no I/O, no Kubernetes client. Secrets are resolved later, by the operator, and never stored here.
A value shown in a problem is escaped (`repr`) if it holds a character that is not printable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, NoReturn

from modeladapter.fsm.scheduling import SchedulingPolicy, UnknownPolicy, parse_policy

ARTIFACT_SCHEMES: Final = ("huggingface://", "hf://", "s3://", "gcs://", "gs://", "tos://")
OBJECT_STORE_SCHEMES: Final = ("s3://", "gcs://", "gs://", "tos://")
# The AIBrix runtime's vLLM client's rule, checked before any download (it would refuse only after one).
LORA_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
# DNS-1035 label: what Kubernetes accepts as a Service name; the adapter's Service carries its name.
SERVICE_NAME: Final = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
# DNS-1123 subdomain: what Kubernetes accepts as a Secret name.
SECRET_NAME: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SELECTOR_OPERATORS: Final = ("In", "NotIn", "Exists", "DoesNotExist")
# A label key's name part and a label value (apimachinery's IsQualifiedName, IsValidLabelValue): at most 63.
LABEL_NAME: Final = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
LABEL_CHARACTERS: Final = re.compile(r"[-A-Za-z0-9_.]*")
# One name of a Hugging Face repository id (huggingface_hub's validate_repo_id): ASCII letters, digits, '-',
# '_', '.', starting and ending with a letter, digit or '_'; at most 96 characters; no '--' or '..'.
HUB_NAME: Final = re.compile(r"[A-Za-z0-9_]([-A-Za-z0-9_.]*[A-Za-z0-9_])?")
HUB_CHARACTERS: Final = re.compile(r"[-A-Za-z0-9_./]*")
HUB_PUNCTUATION: Final = {
    "#": "'#' starts a fragment, and a repository id has none",
    "?": "'?' starts a query, and a repository id has none",
    "@": "'@' would name a revision, which is not supported",
}
CHARACTER_NAMES: Final = {"\n": "a line feed", "\r": "a carriage return", "\t": "a tab", "\x00": "NUL"}
PORT_LABEL: Final = "model.aibrix.ai/port"


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        match self.operator:
            case "In":
                return labels.get(self.key) in self.values
            case "NotIn":
                return labels.get(self.key) not in self.values
            case "Exists":
                return self.key in labels
            case "DoesNotExist":
                return self.key not in labels

    def render(self) -> str:
        match self.operator:
            case "In":
                return f"{self.key} in ({','.join(self.values)})"
            case "NotIn":
                return f"{self.key} notin ({','.join(self.values)})"
            case "Exists":
                return self.key
            case "DoesNotExist":
                return f"!{self.key}"


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """`matchLabels` and `matchExpressions`, both honoured (AIBrix ignores the expressions)."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in self.match_labels) and all(
            requirement.matches(labels) for requirement in self.match_expressions
        )

    def render(self) -> str:
        """The `labelSelector` query string form, e.g. `app=vllm,tier in (a,b),!canary`."""
        parts = [f"{key}={value}" for key, value in self.match_labels]
        parts += [requirement.render() for requirement in self.match_expressions]
        return ",".join(parts)


@dataclass(frozen=True, slots=True)
class SecretKeyRef:
    name: str
    key: str


@dataclass(frozen=True, slots=True)
class UpdateStrategy:
    """`spec.updateStrategy`: how a change of `artifactURL` rolls over the instances (`modeladapter.fsm.rollout`)."""

    max_unavailable: int = 1
    """Instances that may be out for their update at once (never the last of several)."""
    max_surge: int = 1
    """With `replicas`, extra pods the new artifact may be loaded on before old instances retire."""


@dataclass(frozen=True, slots=True)
class AdapterSpec:
    lora_name: str
    engine_port: int
    """From the adapter's `model.aibrix.ai/port` label; 8000 without it."""
    artifact_url: str
    pod_selector: LabelSelector
    replicas: int | None
    """None: every healthy matching pod."""
    scheduler_name: str
    scheduler: SchedulingPolicy
    base_model: str | None = None
    credentials_secret: str | None = None
    api_key_secret: SecretKeyRef | None = None
    has_inline_api_key: bool = False
    """`additionalConfig["api-key"]` is set (the AIBrix way; `apiKeySecretRef` is preferred)."""
    update_strategy: UpdateStrategy = UpdateStrategy()

    @property
    def needs_runtime_sidecar(self) -> bool:
        """Object-store artifacts can only be downloaded by the AIBrix runtime sidecar."""
        return self.artifact_url.startswith(OBJECT_STORE_SCHEMES)


@dataclass(frozen=True, slots=True)
class SpecProblem:
    """Why a spec cannot be acted on: the field's path and the rule it breaks."""

    field: str
    rule: str
    value: str = ""
    reason: str = "InvalidSpec"
    """The `Failed` reason it gives (a Secret's problems have their own)."""

    @property
    def message(self) -> str:
        shown = f" (got {self.value})" if self.value else ""
        return f"{self.field}: {self.rule}{shown}"


class _Invalid(Exception):
    def __init__(self, problem: SpecProblem) -> None:
        self.problem = problem


def parse_spec(raw: Mapping[str, Any]) -> AdapterSpec | SpecProblem:
    """Read a ModelAdapter object (as the API returns it); the first problem found wins."""
    try:
        return _parse(raw)
    except _Invalid as invalid:
        return invalid.problem


def _parse(raw: Mapping[str, Any]) -> AdapterSpec:
    metadata = _mapping(raw.get("metadata"), "metadata")
    spec = _mapping(raw.get("spec"), "spec")
    port = (metadata.get("labels") or {}).get(PORT_LABEL)
    if port is not None and not (isinstance(port, str) and port.isdigit() and 0 < int(port) < 65536):
        _fail(f"metadata.labels[{PORT_LABEL}]", "must be the engine's port number (1-65535)", port)
    name = metadata.get("name")
    if not isinstance(name, str) or not LORA_NAME.fullmatch(name):
        _fail(
            "metadata.name",
            "must be usable as a LoRA name through the AIBrix runtime: 1 to 100 letters, digits, '-' or '_', "
            "starting with a letter or digit",
            name,
        )
    if not SERVICE_NAME.fullmatch(name):
        _fail(
            "metadata.name",
            "must also be usable as the name of the adapter's Service: at most 63 lowercase letters, digits or "
            "'-', starting with a letter and ending with a letter or digit",
            name,
        )
    artifact_url = spec.get("artifactURL")
    if not isinstance(artifact_url, str) or not artifact_url:
        _fail("spec.artifactURL", "is required")
    _check_artifact_url(artifact_url)
    replicas = spec.get("replicas")
    if replicas is not None and (isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1):
        _fail("spec.replicas", "must be at least 1, or omitted to use every healthy matching pod", replicas)
    scheduler_name = spec.get("schedulerName") or "default"
    if not isinstance(scheduler_name, str):
        _fail("spec.schedulerName", "must be a string", scheduler_name)
    try:
        scheduler = parse_policy(scheduler_name)
    except UnknownPolicy as unknown:
        _fail("spec.schedulerName", str(unknown))
    base_model = spec.get("baseModel")
    if base_model is not None and not isinstance(base_model, str):
        _fail("spec.baseModel", "must be a string", base_model)
    additional = spec.get("additionalConfig") or {}
    if not isinstance(additional, Mapping) or not all(isinstance(v, str) for v in additional.values()):
        _fail("spec.additionalConfig", "must map strings to strings")
    return AdapterSpec(
        lora_name=name,
        engine_port=int(port) if port is not None else 8000,
        artifact_url=artifact_url,
        pod_selector=_selector(spec.get("podSelector")),
        replicas=replicas,
        scheduler_name=scheduler_name,
        scheduler=scheduler,
        base_model=base_model,
        credentials_secret=_secret_name(spec.get("credentialsSecretRef"), "spec.credentialsSecretRef"),
        api_key_secret=_secret_key_ref(spec.get("apiKeySecretRef")),
        has_inline_api_key=bool(additional.get("api-key")),
        update_strategy=_update_strategy(spec.get("updateStrategy"), replicas=replicas),
    )


def _update_strategy(raw: Any, *, replicas: int | None) -> UpdateStrategy:
    if raw is None:
        return UpdateStrategy()
    strategy = _mapping(raw, "spec.updateStrategy")
    values: dict[str, int] = {}
    for field, default in (("maxUnavailable", 1), ("maxSurge", 1)):
        value = strategy.get(field, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            _fail(f"spec.updateStrategy.{field}", "must be a whole number, 0 or more", value)
        values[field] = value
    if values["maxUnavailable"] == 0 and (values["maxSurge"] == 0 or replicas is None):
        why = "maxSurge is 0 too" if values["maxSurge"] == 0 else "without spec.replicas an update cannot surge"
        _fail("spec.updateStrategy.maxUnavailable", f"must be at least 1 when {why}: no update could ever start", 0)
    return UpdateStrategy(max_unavailable=values["maxUnavailable"], max_surge=values["maxSurge"])


def _check_artifact_url(url: str) -> None:
    # A line break or NUL would end up in a load request, a log line or a printer column; whitespace at either
    # end is a slip of the editor, and inside a URL it is not a URL.
    if unprintable := _first_unprintable(url):
        _fail("spec.artifactURL", f"must hold only printable characters, not {unprintable}", url)
    if url != url.strip():
        _fail("spec.artifactURL", "must not start or end with whitespace", url)
    if url.startswith("/"):
        if "/../" in f"{url}/":
            _fail("spec.artifactURL", "an absolute path must not contain '..'", url)
        return  # a directory's name may hold a space
    if " " in url:
        _fail("spec.artifactURL", f"a URL must not contain whitespace (a space at character {url.index(' ') + 1})", url)
    scheme = next((s for s in ARTIFACT_SCHEMES if url.startswith(s)), None)
    if scheme is None:
        supported = ", ".join([*ARTIFACT_SCHEMES, "/absolute/path"])
        _fail("spec.artifactURL", f"unsupported scheme; use one of {supported}", url)
    rest = url.removeprefix(scheme)
    if scheme in ("huggingface://", "hf://"):
        _check_hub_repository(scheme, rest.strip("/"), url)
    elif not rest.split("/", 1)[0]:
        _fail("spec.artifactURL", f"{scheme} needs a bucket: {scheme}BUCKET/PATH", url)


def _check_hub_repository(scheme: str, repository: str, url: str) -> None:
    """ORG/REPO, each a name the Hub accepts: engines hand it to `huggingface_hub`, which would refuse it only
    at load time, on every pod in turn; a revision or fragment would be refused there too, not honoured."""
    rule = f"a Hugging Face artifact is {scheme}ORG/REPO, each 1 to 96 ASCII letters, digits, '-', '_' or '.'"
    if not HUB_CHARACTERS.fullmatch(repository):
        wrong = next(c for c in repository if not HUB_CHARACTERS.fullmatch(c))
        _fail("spec.artifactURL", f"{rule}; {HUB_PUNCTUATION.get(wrong, f'{wrong!r} is not allowed')}", url)
    parts = repository.split("/")
    if len(parts) != 2 or not all(parts):
        _fail("spec.artifactURL", rule, url)
    for part, name in zip(("ORG", "REPO"), parts, strict=True):
        if len(name) > 96:
            _fail("spec.artifactURL", f"{rule}; {part} is {len(name)} characters long", url)
        if not HUB_NAME.fullmatch(name):
            _fail("spec.artifactURL", f"{rule}; {part} must start and end with a letter, digit or '_'", url)
        if doubled := next((d for d in ("--", "..") if d in name), None):
            _fail("spec.artifactURL", f"{rule}; {doubled!r} is not allowed", url)
    if repository.endswith(".git"):
        _fail("spec.artifactURL", f"{rule}; REPO must not end in '.git'", url)


def _first_unprintable(text: str) -> str | None:
    """The first character that is not printable (a control, line break or invisible formatting character),
    described without writing it, e.g. `a line feed ('\\n', U+000A) at character 12`."""
    index, character = next(((i, c) for i, c in enumerate(text) if not c.isprintable()), (-1, ""))
    if index < 0:
        return None
    escaped = repr(character)
    named = CHARACTER_NAMES.get(character)
    described = f"{named} ({escaped}, U+{ord(character):04X})" if named else f"{escaped} (U+{ord(character):04X})"
    return f"{described} at character {index + 1}"


def _selector(raw: Any) -> LabelSelector:
    if raw is None:
        _fail("spec.podSelector", "is required")
    selector = _mapping(raw, "spec.podSelector")
    labels = selector.get("matchLabels") or {}
    if not isinstance(labels, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        _fail("spec.podSelector.matchLabels", "must map label keys to string values")
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list):
        _fail("spec.podSelector.matchExpressions", "must be a list")
    for key, value in labels.items():
        path = f"spec.podSelector.matchLabels[{_quoted(key)}]"
        _check_label_key(key, path)
        _check_label_value(value, path)
    requirements = tuple(_requirement(e, f"spec.podSelector.matchExpressions[{i}]") for i, e in enumerate(expressions))
    parsed = LabelSelector(match_labels=tuple(sorted(labels.items())), match_expressions=requirements)
    if parsed.empty:
        _fail("spec.podSelector", "must not be empty: an empty selector would match every pod in the namespace")
    return parsed


def _requirement(raw: Any, path: str) -> Requirement:
    expression = _mapping(raw, path)
    key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
    if not isinstance(key, str) or not key:
        _fail(f"{path}.key", "is required")
    if operator not in SELECTOR_OPERATORS:
        _fail(f"{path}.operator", f"must be one of {', '.join(SELECTOR_OPERATORS)}", operator)
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        _fail(f"{path}.values", "must be a list of strings")
    if operator in ("In", "NotIn") and not values:
        _fail(f"{path}.values", f"must not be empty for operator {operator}")
    if operator in ("Exists", "DoesNotExist") and values:
        _fail(f"{path}.values", f"must be empty for operator {operator}")
    _check_label_key(key, f"{path}.key")
    for index, value in enumerate(values):
        _check_label_value(value, f"{path}.values[{index}]")
    return Requirement(key=key, operator=operator, values=tuple(values))


def _check_label_key(key: str, path: str) -> None:
    """As Kubernetes checks a label key: `[PREFIX/]NAME`, PREFIX a DNS subdomain, NAME a label name.

    No pod can carry a label of any other key, so such a selector cannot mean what it says: `In` would wait
    for ever for candidates that cannot come (`NoCandidatePods`), `DoesNotExist` would match every pod."""
    prefix, _, name = key.rpartition("/")
    why = None
    if key.count("/") > 1:
        why = "at most one '/' separates the prefix from the name part"
    elif "/" in key and not prefix:
        why = "the prefix before '/' must not be empty"
    elif len(prefix) > 253:
        why = f"the prefix is {len(prefix)} characters long; at most 253"
    elif prefix and not SECRET_NAME.fullmatch(prefix):  # a DNS-1123 subdomain, as a Secret's name is
        why = "the prefix must be a DNS subdomain: lowercase letters, digits, '-' and '.'"
    elif not name:
        why = "the name part must not be empty"
    elif len(name) > 63:
        why = f"the name part is {len(name)} characters long; at most 63"
    elif not LABEL_NAME.fullmatch(name):
        why = "the name part must be letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
    if why:
        _fail(path, f"not a label key Kubernetes accepts: {why}", key)


def _check_label_value(value: str, path: str) -> None:
    """As Kubernetes checks a label value: empty, or at most 63 characters of a label name."""
    why = None
    if len(value) > 63:
        why = f"it is {len(value)} characters long; at most 63"
    elif not LABEL_CHARACTERS.fullmatch(value):
        why = "it must be letters, digits, '-', '_' or '.', or empty"
    elif value and not LABEL_NAME.fullmatch(value):
        why = "it must start and end with a letter or digit"
    if why:
        _fail(path, f"not a label value Kubernetes accepts: {why}", value)


def _quoted(key: str) -> str:
    """A map key as it appears in a field path: JSON-quoted (so escaped), and cut short if it is long."""
    return json.dumps(key if len(key) <= 80 else f"{key[:64]}...")


def _secret_name(raw: Any, path: str) -> str | None:
    if raw is None:
        return None
    name = _mapping(raw, path).get("name")
    if not isinstance(name, str) or not SECRET_NAME.fullmatch(name) or len(name) > 253:
        _fail(f"{path}.name", "must name a Secret in the adapter's namespace", name)
    return name


def _secret_key_ref(raw: Any) -> SecretKeyRef | None:
    name = _secret_name(raw, "spec.apiKeySecretRef")
    if name is None:
        return None
    key = _mapping(raw, "spec.apiKeySecretRef").get("key") or "api-key"
    if not isinstance(key, str) or not re.fullmatch(r"[-._a-zA-Z0-9]+", key):
        _fail("spec.apiKeySecretRef.key", "must be a Secret data key", key)
    return SecretKeyRef(name=name, key=key)


def _mapping(raw: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        _fail(path, "must be an object")
    return raw


def _fail(field: str, rule: str, value: object = None) -> NoReturn:
    # A string is shown as written, unless it holds a line break, NUL or the like: then escaped.
    shown = "" if value is None else (value if isinstance(value, str) and value.isprintable() else repr(value))
    raise _Invalid(SpecProblem(field=field, rule=rule, value=shown[:200]))
