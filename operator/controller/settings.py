"""The operator's settings: one frozen `OperatorSettings`, read from `modeladapter run`'s flags and the environment.

Every setting has a flag and an environment variable named after its field: `stability_window` is
`--stability-window` and `MODELADAPTER_STABILITY_WINDOW`. A flag wins over the variable, the variable over the
default; an empty variable counts as unset (so a manifest can blank one out). `POD_NAMESPACE`, which the
Deployment fills in from the downward API, is the default namespace of the leader-election Lease; outside a
pod it is the install's namespace (`modeladapter-system`, where `deploy/default` puts the operator), so that
a `modeladapter run` on a laptop and the operator in the cluster compete for one Lease and never both act.

The fields come in kopf's groups (cluster access, the event log, reconciling, leader election, probes,
logging), each with a docstring that says what it changes; unlike kopf's they stay in one flat class, so that
one field is one flag and one variable.

Values are checked when the object is built, whatever built it: a bad one raises `SettingsError`, whose
message names the flag and the variable, e.g.
`--stability-window / MODELADAPTER_STABILITY_WINDOW: must not be negative, got -1`. The CLI prints that line
and exits with status 2.

Durations are float seconds. On the command line and in the environment they may also carry a unit:
`500ms`, `30s`, `2m`, `1h`, `1d`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, Literal

from modeladapter.fsm.backoff import BackoffPolicy
from modeladapter.operator.kube.manifests import DEFAULT_NAMESPACE
from modeladapter.store.engine import (
    DEFAULT_DATABASE_URL,
    BadDatabaseParameter,
    UnsupportedDatabase,
    normalize_url,
    redact_url,
)

ENV_PREFIX: Final = "MODELADAPTER_"
LogFormat = Literal["json", "text"]
LOG_FORMATS: Final[tuple[LogFormat, ...]] = ("json", "text")
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_LEASE_NAMESPACE: Final = DEFAULT_NAMESPACE
"""Outside a pod: the namespace `deploy/default` installs the operator in, whose Lease the installed one holds."""
DEFAULT_PROBE_ADDRESS: Final = "0.0.0.0:8080"

# DNS-1123 label (namespaces) and subdomain (Lease names), as the API server checks them.
_DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DURATION: Final = re.compile(r"^\s*(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?P<unit>ms|s|m|h|d)?\s*$")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


class SettingsError(ValueError):
    """A setting has a value the operator cannot run with; the message names its flag and variable."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{describe(setting)}: {problem}")
        self.setting = setting
        self.problem = problem


def flag(setting: str) -> str:
    """The command-line flag of a setting: `stability_window` -> `--stability-window`."""
    return "--" + setting.replace("_", "-")


def env_var(setting: str) -> str:
    """The environment variable of a setting: `stability_window` -> `MODELADAPTER_STABILITY_WINDOW`."""
    return ENV_PREFIX + setting.upper()


def describe(setting: str) -> str:
    return f"{flag(setting)} / {env_var(setting)}"


def _default_identity() -> str:
    # The hostname is the pod's name in a cluster; the suffix tells two processes on one host apart and a
    # restarted container from its previous life (which may still hold the Lease until it expires).
    return f"{socket.gethostname()}-{secrets.token_hex(4)}"


def _default_lease_namespace() -> str:
    return os.environ.get("POD_NAMESPACE") or DEFAULT_LEASE_NAMESPACE


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    """Everything `modeladapter run` can be told. Build it with `settings_from(args, environ)`, or directly in tests."""

    # --- the cluster -----------------------------------------------------------------------------------------

    kubeconfig: Path | None = None
    """A kubeconfig file; None means the in-cluster service account, then `~/.kube/config`."""

    namespace: str | None = None
    """Watch ModelAdapters (and pods) in this namespace only; None means every namespace."""

    # --- the event log ---------------------------------------------------------------------------------------

    database_url: str = DEFAULT_DATABASE_URL
    """The event log: `sqlite:///PATH` (embedded, one operator) or `postgresql://USER:PASSWORD@HOST/DB`."""

    # --- reconciling -----------------------------------------------------------------------------------------

    stability_window: float = 5.0
    """Seconds a pod must have been Ready before an adapter is placed on it."""

    backoff_base: float = 5.0
    """Seconds to wait after a pod's first failed load; each further failure doubles it (5, 10, 20, 40, 80)."""

    concurrency: int = 8
    """How many adapters are reconciled at once; each adapter is always reconciled by one worker at a time."""

    verify_interval: float = 30.0
    """Seconds between checks of loaded placements against the engine's `/v1/models` (eviction, restarts)."""

    drain_seconds: float = 2.0
    """Seconds between a pod leaving an adapter's EndpointSlice and its engine unloading the adapter (an update,
    a scale-down), so that gateways, which follow the slice a moment later, send it no more requests first."""

    enable_runtime_sidecar: bool = False
    """Load through the AIBrix runtime sidecar (container `aibrix-runtime`, port 8080) where a pod has one."""

    http_route_parent: str | None = None
    """`NAMESPACE/NAME` (or `NAME`, in the adapter's namespace) of a Gateway: publish, per adapter, an HTTPRoute
    attached to it, shaped like AIBrix's model router's. None: no HTTPRoutes (the default)."""

    # --- leader election -------------------------------------------------------------------------------------

    leader_election: bool = True
    """Act only while holding the Lease, so that two replicas never act at once. Off: act at once, alone."""

    lease_name: str = "modeladapter-operator"
    """The `coordination.k8s.io/v1` Lease that replicas compete for."""

    lease_namespace: str = field(default_factory=_default_lease_namespace)
    """The Lease's namespace; defaults to the operator's own (`POD_NAMESPACE`), else the install's
    (`modeladapter-system`): one Lease however the operator was started."""

    lease_duration: float = 15.0
    """Seconds a standby waits after the last renewal before it takes the Lease over."""

    renew_deadline: float = 10.0
    """Seconds the leader keeps trying to renew before it gives up leading (shorter than the lease duration)."""

    retry_period: float = 2.0
    """Seconds between attempts to acquire or renew the Lease (shorter than the renew deadline)."""

    identity: str = field(default_factory=_default_identity)
    """This process's name in the Lease's `holderIdentity`; defaults to the hostname and a random suffix."""

    # --- probes and metrics ----------------------------------------------------------------------------------

    probe_address: str = DEFAULT_PROBE_ADDRESS
    """`HOST:PORT` serving `/metrics`, `/healthz` and `/readyz` (`[::]:8080` for IPv6; port 0 picks a free one)."""

    # --- logging ---------------------------------------------------------------------------------------------

    log_level: str = "INFO"
    """The lowest level logged: DEBUG, INFO, WARNING, ERROR or CRITICAL."""

    log_format: LogFormat = "json"
    """`json`: one JSON object per line, for log collectors; `text`: one readable line, for humans."""

    def __post_init__(self) -> None:
        for name in (
            "stability_window",
            "drain_seconds",
            "backoff_base",
            "verify_interval",
            "lease_duration",
            "renew_deadline",
            "retry_period",
        ):
            _check_seconds(name, getattr(self, name), zero_allowed=name in ("stability_window", "drain_seconds"))
        longest_wait = BackoffPolicy().cap.total_seconds()
        if self.backoff_base > longest_wait:
            raise SettingsError(
                "backoff_base", f"must be at most {longest_wait:g} s (no wait is longer), got {self.backoff_base:g}"
            )
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise SettingsError("concurrency", f"must be a whole number of at least 1, got {self.concurrency!r}")
        if self.renew_deadline >= self.lease_duration:
            raise SettingsError(
                "renew_deadline",
                f"must be shorter than {describe('lease_duration')} ({self.renew_deadline:g} s >= "
                f"{self.lease_duration:g} s): a leader must give up before a standby may take over",
            )
        if self.retry_period >= self.renew_deadline:
            raise SettingsError(
                "retry_period",
                f"must be shorter than {describe('renew_deadline')} ({self.retry_period:g} s >= "
                f"{self.renew_deadline:g} s): the leader needs more than one try to renew",
            )
        _check_database_url(self.database_url)
        if self.namespace is not None and not _DNS_LABEL.match(self.namespace):
            raise SettingsError("namespace", f"{self.namespace!r} is not a valid namespace name")
        if not _DNS_LABEL.match(self.lease_namespace):
            raise SettingsError("lease_namespace", f"{self.lease_namespace!r} is not a valid namespace name")
        if len(self.lease_name) > 253 or not _DNS_SUBDOMAIN.match(self.lease_name):
            raise SettingsError("lease_name", f"{self.lease_name!r} is not a valid Lease name (DNS-1123 subdomain)")
        if not self.identity.strip():
            raise SettingsError("identity", "must not be empty")
        if self.http_route_parent is not None:
            parse_parent(self.http_route_parent)
        parse_host_port(self.probe_address, setting="probe_address")
        if self.log_level not in LOG_LEVELS:
            raise SettingsError("log_level", f"must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")
        if self.log_format not in LOG_FORMATS:
            raise SettingsError("log_format", f"must be json or text, got {self.log_format!r}")

    @property
    def backoff_policy(self) -> BackoffPolicy:
        """The retry timing for loads: `backoff_base` doubled per failure, capped, 5 attempts per pod."""
        return BackoffPolicy(base=timedelta(seconds=self.backoff_base))

    @property
    def probe_host(self) -> str:
        return parse_host_port(self.probe_address)[0]

    @property
    def probe_port(self) -> int:
        return parse_host_port(self.probe_address)[1]


def parse_parent(text: str) -> tuple[str | None, str]:
    """`NAMESPACE/NAME` or `NAME` of a Gateway: (namespace or None, name); SettingsError naming the setting."""
    namespace, _, name = text.strip().rpartition("/")
    if (namespace and not _DNS_LABEL.match(namespace)) or len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise SettingsError("http_route_parent", f"expected NAMESPACE/NAME of a Gateway, got {text!r}")
    return namespace or None, name


def _check_seconds(setting: str, value: object, *, zero_allowed: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SettingsError(setting, f"must be a finite number of seconds, got {value!r}")
    if value < 0:
        raise SettingsError(setting, f"must not be negative, got {value:g}")
    if value == 0 and not zero_allowed:
        raise SettingsError(setting, "must be longer than 0 seconds")


def _check_database_url(url: str) -> None:
    try:
        normalize_url(url)
    except BadDatabaseParameter as error:
        raise SettingsError("database_url", str(error)) from None
    except UnsupportedDatabase as error:
        # Never echo an unparseable URL: it may hold a password that redaction cannot find.
        detail = str(error) if "unsupported database" in str(error) else f"not a database URL ({redact_url(url)})"
        raise SettingsError(
            "database_url", f"{detail}; use sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB"
        ) from None


def parse_host_port(address: str, *, setting: str = "probe_address") -> tuple[str, int]:
    """`HOST:PORT` (or `[IPv6]:PORT`; an empty host means every interface) as `(host, port)`."""
    host, colon, port_text = address.rpartition(":")
    if not colon or not port_text.isdigit():
        raise SettingsError(setting, f"expected HOST:PORT such as 0.0.0.0:8080, got {address!r}")
    port = int(port_text)
    if port > 65535:
        raise SettingsError(setting, f"port {port} is out of range (0-65535) in {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if not host or ":" not in host:
            raise SettingsError(setting, f"expected an IPv6 address between the brackets in {address!r}")
    elif ":" in host or "[" in host or "]" in host:
        raise SettingsError(setting, f"write an IPv6 host in brackets, as [::]:8080, got {address!r}")
    elif any(character.isspace() or character in "/@" for character in host):
        raise SettingsError(setting, f"{host!r} is not a host name or address in {address!r}")
    return host or "0.0.0.0", port


# --- the command line and the environment ---------------------------------------------------------------------


def parse_seconds(text: str) -> float:
    """`30`, `2.5`, `500ms`, `30s`, `2m`, `1h`, `1d` as seconds; ValueError otherwise (signs are not accepted).

    The one duration syntax of the CLI: the operator's flags and the audit commands (`stuck --for 5m`,
    `events --since 2h`) share it.
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"expected seconds such as 30, 2.5, 500ms or 2m, got {text!r}")
    return float(match["number"]) * _UNIT_SECONDS[match["unit"]]


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _parse_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None


def _parse_seconds_or_negative(text: str) -> float:
    # A leading minus gets the clearer "must not be negative" message of the range check.
    stripped = text.strip()
    if stripped.startswith("-"):
        return -parse_seconds(stripped[1:])
    return parse_seconds(stripped)


def _parse_level(text: str) -> str:
    return text.strip().upper()


def _parse_namespace(text: str) -> str | None:
    return text.strip() or None  # an empty namespace means every namespace, as in kubectl


@dataclass(frozen=True, slots=True)
class _Option:
    setting: str
    parse: Callable[[str], Any]
    metavar: str | None
    help: str
    choices: tuple[str, ...] | None = None
    boolean: bool = False


_SECONDS = _parse_seconds_or_negative
OPTIONS: Final[tuple[_Option, ...]] = (
    _Option("kubeconfig", Path, "FILE", "kubeconfig file (default: in-cluster config, then ~/.kube/config)"),
    _Option("namespace", _parse_namespace, "NAMESPACE", "watch this namespace only (default: every namespace)"),
    _Option("database_url", str, "URL", "the event log, sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB"),
    _Option("stability_window", _SECONDS, "SECONDS", "a pod must have been Ready this long to be used"),
    _Option("backoff_base", _SECONDS, "SECONDS", "wait after a pod's first failed load, doubled per failure"),
    _Option("concurrency", _parse_int, "N", "adapters reconciled at once"),
    _Option("verify_interval", _SECONDS, "SECONDS", "re-check loaded adapters against /v1/models this often"),
    _Option(
        "drain_seconds",
        _SECONDS,
        "SECONDS",
        "a pod out of the EndpointSlice keeps the adapter this long before it is unloaded",
    ),
    _Option("enable_runtime_sidecar", parse_bool, None, "load through the AIBrix runtime sidecar", boolean=True),
    _Option(
        "http_route_parent",
        _parse_namespace,
        "NAMESPACE/NAME",
        "publish an HTTPRoute per adapter, attached to this Gateway (AIBrix's: aibrix-system/aibrix-eg)",
    ),  # fmt: skip
    _Option("leader_election", parse_bool, None, "act only while holding the Lease", boolean=True),
    _Option("lease_name", str, "NAME", "the leader-election Lease"),
    _Option(
        "lease_namespace",
        str,
        "NAMESPACE",
        f"the Lease's namespace (default: $POD_NAMESPACE, else {DEFAULT_LEASE_NAMESPACE}, the install's)",
    ),
    _Option("lease_duration", _SECONDS, "SECONDS", "a standby takes over this long after the last renewal"),
    _Option("renew_deadline", _SECONDS, "SECONDS", "the leader steps down if it cannot renew for this long"),
    _Option("retry_period", _SECONDS, "SECONDS", "time between Lease acquire or renew attempts"),
    _Option("identity", str, "NAME", "holder identity in the Lease (default: hostname and a random suffix)"),
    _Option("probe_address", str, "HOST:PORT", "serve /metrics, /healthz and /readyz here"),
    _Option("log_level", _parse_level, "LEVEL", "lowest level logged", choices=LOG_LEVELS),
    _Option("log_format", str, "FORMAT", "json (one object per line) or text", choices=LOG_FORMATS),
)
"""Every setting `modeladapter run` takes, in the order `--help` lists them."""


def _default_text(setting: str) -> str:
    if setting in ("kubeconfig", "namespace", "lease_namespace", "identity", "http_route_parent"):
        return ""  # the help sentence already says what happens without it
    default = next(f for f in dataclasses.fields(OperatorSettings) if f.name == setting).default
    if isinstance(default, bool):
        return f"; default {'on' if default else 'off'}"
    if isinstance(default, float):
        return f"; default {default:g}"
    return f"; default {default}"


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting to `parser` (the `run` subcommand); each says its variable and default."""
    group = parser.add_argument_group("operator settings (each also from the environment variable shown)")
    for option in OPTIONS:
        help_text = f"{option.help} (env {env_var(option.setting)}{_default_text(option.setting)})"
        if option.boolean:
            group.add_argument(
                flag(option.setting),
                dest=option.setting,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            # Strings on purpose: values are parsed in `settings_from`, so a bad flag and a bad variable get
            # the same message naming both.
            group.add_argument(
                flag(option.setting), dest=option.setting, metavar=option.metavar, default=None, help=help_text
            )


def settings_from(args: argparse.Namespace, environ: Mapping[str, str]) -> OperatorSettings:
    """The settings from parsed `run` flags, then `environ`, then the defaults; `SettingsError` if one is bad."""
    values: dict[str, Any] = {}
    for option in OPTIONS:
        given: object = getattr(args, option.setting, None)
        if given is None:
            given = environ.get(env_var(option.setting)) or None
        if given is None:
            continue
        if isinstance(given, bool):
            values[option.setting] = given
            continue
        text = str(given)
        try:
            value = option.parse(text)
        except ValueError as error:
            raise SettingsError(option.setting, str(error)) from None
        if option.choices is not None and value not in option.choices:
            raise SettingsError(option.setting, f"must be one of {', '.join(option.choices)}, got {text!r}")
        values[option.setting] = value
    values.setdefault("lease_namespace", environ.get("POD_NAMESPACE") or DEFAULT_LEASE_NAMESPACE)
    kubeconfig = values.get("kubeconfig")
    if kubeconfig is not None:
        values["kubeconfig"] = kubeconfig = kubeconfig.expanduser()
        if not kubeconfig.is_file():
            raise SettingsError("kubeconfig", f"no such file: {kubeconfig}")
    return OperatorSettings(**values)
