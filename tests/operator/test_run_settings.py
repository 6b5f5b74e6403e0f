"""`modeladapter run`'s settings: flags, then `MODELADAPTER_*` variables, then defaults; bad values are a
one-line usage error naming the flag and the variable.

Excluded: what the operator does with the settings (the reconcile core's tests)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import socket
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from modeladapter.operator.cli.main import main
from modeladapter.operator.controller.settings import (
    OPTIONS,
    OperatorSettings,
    SettingsError,
    add_run_arguments,
    env_var,
    flag,
    settings_from,
)
from modeladapter.store.engine import DEFAULT_DATABASE_URL


def parse(*argv: str, environ: dict[str, str] | None = None) -> OperatorSettings:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    return settings_from(parser.parse_args(list(argv)), environ or {})


def test_every_setting_has_a_flag_and_a_variable_named_after_its_field() -> None:
    fields = {f.name for f in dataclasses.fields(OperatorSettings)}
    assert {option.setting for option in OPTIONS} == fields
    assert flag("stability_window") == "--stability-window"
    assert env_var("stability_window") == "MODELADAPTER_STABILITY_WINDOW"


def test_the_defaults_are_the_documented_ones() -> None:
    settings = parse(environ={})
    assert settings.kubeconfig is None
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.namespace is None
    assert (settings.stability_window, settings.backoff_base, settings.verify_interval) == (5.0, 5.0, 30.0)
    assert settings.concurrency == 8
    assert settings.enable_runtime_sidecar is False
    assert settings.leader_election is True
    assert (settings.lease_name, settings.lease_namespace) == ("modeladapter-operator", "modeladapter-system")
    assert (settings.lease_duration, settings.renew_deadline, settings.retry_period) == (15.0, 10.0, 2.0)
    assert (settings.probe_address, settings.probe_host, settings.probe_port) == ("0.0.0.0:8080", "0.0.0.0", 8080)
    assert (settings.log_level, settings.log_format) == ("INFO", "json")


def test_the_identity_is_the_hostname_with_a_random_suffix() -> None:
    first, second = parse().identity, parse().identity
    assert first.startswith(socket.gethostname() + "-") and second.startswith(socket.gethostname() + "-")
    assert first != second


def test_the_lease_lives_in_the_pods_namespace_when_it_is_known() -> None:
    assert parse(environ={"POD_NAMESPACE": "modeladapter-system"}).lease_namespace == "modeladapter-system"
    assert parse("--lease-namespace", "ops", environ={"POD_NAMESPACE": "modeladapter-system"}).lease_namespace == "ops"


def test_a_variable_overrides_the_default_and_a_flag_overrides_the_variable() -> None:
    environ = {"MODELADAPTER_CONCURRENCY": "3", "MODELADAPTER_VERIFY_INTERVAL": "2m"}
    assert parse(environ=environ).concurrency == 3
    assert parse(environ=environ).verify_interval == 120.0
    assert parse("--concurrency", "5", environ=environ).concurrency == 5


def test_every_setting_can_be_given_both_ways(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    values = {
        "kubeconfig": str(kubeconfig), "namespace": "team-a", "database_url": "postgresql://ma@db/events",
        "stability_window": "1", "drain_seconds": "0", "backoff_base": "500ms", "concurrency": "2", "verify_interval": "10s",
        "enable_runtime_sidecar": "true", "http_route_parent": "aibrix-system/aibrix-eg",
        "leader_election": "false", "lease_name": "ma-lease",
        "lease_namespace": "ops", "lease_duration": "20", "renew_deadline": "12", "retry_period": "3",
        "identity": "replica-a", "probe_address": "127.0.0.1:9090", "log_level": "debug", "log_format": "text",
    }  # fmt: skip
    expected = OperatorSettings(
        kubeconfig=kubeconfig, namespace="team-a", database_url="postgresql://ma@db/events", stability_window=1.0,
        drain_seconds=0.0,
        backoff_base=0.5, concurrency=2, verify_interval=10.0, enable_runtime_sidecar=True,
        http_route_parent="aibrix-system/aibrix-eg", leader_election=False,
        lease_name="ma-lease", lease_namespace="ops", lease_duration=20.0, renew_deadline=12.0, retry_period=3.0,
        identity="replica-a", probe_address="127.0.0.1:9090", log_level="DEBUG", log_format="text",
    )  # fmt: skip
    assert set(values) == {option.setting for option in OPTIONS}
    from_environment = parse(environ={env_var(name): value for name, value in values.items()})
    argv: list[str] = []
    for name, value in values.items():
        if name in ("enable_runtime_sidecar", "leader_election"):
            argv.append(flag(name) if value == "true" else "--no-" + flag(name)[2:])
        else:
            argv += [flag(name), value]
    assert from_environment == expected
    assert parse(*argv) == expected


def test_a_boolean_flag_can_switch_off_what_the_environment_switched_on() -> None:
    environ = {"MODELADAPTER_ENABLE_RUNTIME_SIDECAR": "yes", "MODELADAPTER_LEADER_ELECTION": "0"}
    assert parse(environ=environ).enable_runtime_sidecar is True
    assert parse(environ=environ).leader_election is False
    assert parse("--no-enable-runtime-sidecar", "--leader-election", environ=environ).enable_runtime_sidecar is False
    assert parse("--leader-election", environ=environ).leader_election is True


def test_an_empty_variable_counts_as_unset() -> None:
    settings = parse(environ={"MODELADAPTER_NAMESPACE": "", "MODELADAPTER_CONCURRENCY": "", "POD_NAMESPACE": ""})
    assert (settings.namespace, settings.concurrency, settings.lease_namespace) == (None, 8, "modeladapter-system")


def test_an_ipv6_probe_address_is_written_in_brackets() -> None:
    settings = parse("--probe-address", "[::]:8443")
    assert (settings.probe_host, settings.probe_port) == ("::", 8443)


BAD_VALUES = [
    pytest.param("--stability-window", "-1", "--stability-window / MODELADAPTER_STABILITY_WINDOW: must not be negative", id="negative-window"),
    pytest.param("--drain-seconds", "-2", "--drain-seconds / MODELADAPTER_DRAIN_SECONDS: must not be negative", id="negative-drain"),
    pytest.param("--backoff-base", "0", "--backoff-base / MODELADAPTER_BACKOFF_BASE: must be longer than 0 seconds", id="zero-backoff"),
    pytest.param("--verify-interval", "soon", "--verify-interval / MODELADAPTER_VERIFY_INTERVAL: expected seconds", id="not-a-duration"),
    pytest.param("--lease-duration", "-15s", "--lease-duration / MODELADAPTER_LEASE_DURATION: must not be negative", id="negative-lease"),
    pytest.param("--concurrency", "0", "--concurrency / MODELADAPTER_CONCURRENCY: must be a whole number of at least 1", id="zero-concurrency"),
    pytest.param("--concurrency", "2.5", "--concurrency / MODELADAPTER_CONCURRENCY: expected a whole number", id="fractional-concurrency"),
    pytest.param("--probe-address", "8080", "--probe-address / MODELADAPTER_PROBE_ADDRESS: expected HOST:PORT", id="no-host"),
    pytest.param("--probe-address", "0.0.0.0:http", "--probe-address / MODELADAPTER_PROBE_ADDRESS: expected HOST:PORT", id="named-port"),
    pytest.param("--probe-address", "0.0.0.0:99999", "--probe-address / MODELADAPTER_PROBE_ADDRESS: port 99999 is out of range", id="port-range"),
    pytest.param("--probe-address", ":::8080", "--probe-address / MODELADAPTER_PROBE_ADDRESS: write an IPv6 host in brackets", id="bare-ipv6"),
    pytest.param("--log-format", "xml", "--log-format / MODELADAPTER_LOG_FORMAT: must be one of json, text", id="log-format"),
    pytest.param("--log-level", "chatty", "--log-level / MODELADAPTER_LOG_LEVEL: must be one of DEBUG, INFO", id="log-level"),
    pytest.param("--database-url", "mysql://root@db/x", "--database-url / MODELADAPTER_DATABASE_URL: unsupported database 'mysql'", id="mysql"),
    pytest.param("--database-url", "not a url", "--database-url / MODELADAPTER_DATABASE_URL: not a database URL", id="garbage-url"),
    pytest.param("--database-url", "postgresql://u:pw@db/x?sslmod=require", "--database-url / MODELADAPTER_DATABASE_URL: the PostgreSQL URL parameter 'sslmod' is not supported; use sslmode, ", id="unknown-libpq-parameter"),
    pytest.param("--database-url", "postgresql://u:pw@db/x?sslmode=on", "--database-url / MODELADAPTER_DATABASE_URL: sslmode='on' is not one of disable, allow, prefer, require, verify-ca, verify-full (in postgresql://u:***@db/x?sslmode=on)", id="bad-sslmode"),
    pytest.param("--namespace", "Team_A", "--namespace / MODELADAPTER_NAMESPACE: 'Team_A' is not a valid namespace name", id="namespace"),
    pytest.param("--lease-name", "Lease!", "--lease-name / MODELADAPTER_LEASE_NAME: 'Lease!' is not a valid Lease name", id="lease-name"),
    pytest.param("--identity", " ", "--identity / MODELADAPTER_IDENTITY: must not be empty", id="identity"),
    pytest.param("--http-route-parent", "Aibrix/eg", "--http-route-parent / MODELADAPTER_HTTP_ROUTE_PARENT: expected NAMESPACE/NAME of a Gateway, got 'Aibrix/eg'", id="route-parent"),
    pytest.param("--http-route-parent", "a/b/c", "--http-route-parent / MODELADAPTER_HTTP_ROUTE_PARENT: expected NAMESPACE/NAME of a Gateway", id="route-parent-path"),
]  # fmt: skip


@pytest.mark.parametrize(("option", "value", "message"), BAD_VALUES)
def test_a_bad_flag_is_refused_naming_the_flag_and_the_variable(option: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        parse(f"{option}={value}")  # `=`: argparse would read `-15s` as an option
    assert str(refused.value).startswith(message), str(refused.value)


@pytest.mark.parametrize(("option", "value", "message"), BAD_VALUES)
def test_a_bad_variable_is_refused_with_the_same_message(option: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        parse(environ={env_var(option[2:].replace("-", "_")): value})
    assert str(refused.value).startswith(message), str(refused.value)


def test_a_bad_boolean_variable_is_refused() -> None:
    with pytest.raises(
        SettingsError, match="^--leader-election / MODELADAPTER_LEADER_ELECTION: expected true or false"
    ):
        parse(environ={"MODELADAPTER_LEADER_ELECTION": "maybe"})


def test_leader_election_timings_must_nest() -> None:
    with pytest.raises(
        SettingsError,
        match="^--renew-deadline / MODELADAPTER_RENEW_DEADLINE: must be shorter than --lease-duration / MODELADAPTER_LEASE_DURATION",
    ):
        parse("--lease-duration", "10", "--renew-deadline", "10")
    with pytest.raises(
        SettingsError, match="^--retry-period / MODELADAPTER_RETRY_PERIOD: must be shorter than --renew-deadline"
    ):
        parse("--retry-period", "10s")


def test_a_kubeconfig_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="^--kubeconfig / MODELADAPTER_KUBECONFIG: no such file: "):
        parse("--kubeconfig", str(tmp_path / "missing"))


def test_a_refused_database_url_never_shows_its_password() -> None:
    for url in ("mysql://root:hunter2@db/x", "postgresql//root:hunter2@db/x"):
        with pytest.raises(SettingsError) as refused:
            parse("--database-url", url)
        assert "hunter2" not in str(refused.value)


def test_settings_built_in_code_are_checked_too() -> None:
    with pytest.raises(SettingsError, match="^--concurrency / MODELADAPTER_CONCURRENCY"):
        OperatorSettings(concurrency=0)
    with pytest.raises(SettingsError, match="^--log-format / MODELADAPTER_LOG_FORMAT"):
        OperatorSettings(log_format="yaml")  # type: ignore[arg-type]


# --- the `run` command --------------------------------------------------------------------------------------


@pytest.fixture
def operator_entry_point(monkeypatch: pytest.MonkeyPatch) -> list[OperatorSettings]:
    """Stands in for `modeladapter.operator.controller.running` (the operator process): records what it is started with."""
    started: list[OperatorSettings] = []

    async def run_operator(settings: OperatorSettings) -> int:
        started.append(settings)
        return 0

    module = types.ModuleType("modeladapter.operator.controller.running")
    module.run_operator = run_operator  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "modeladapter.operator.controller.running", module)
    return started


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`run` configures the root logger; put it back as pytest had it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield None
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def test_run_starts_the_operator_with_the_settings(
    operator_entry_point: list[OperatorSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELADAPTER_CONCURRENCY", "4")
    monkeypatch.setenv("POD_NAMESPACE", "modeladapter-system")
    assert main(["run", "--namespace", "team-a", "--no-leader-election", "--log-format", "text"]) == 0
    (settings,) = operator_entry_point
    assert (settings.namespace, settings.concurrency, settings.leader_election) == ("team-a", 4, False)
    assert (settings.lease_namespace, settings.log_format) == ("modeladapter-system", "text")


def test_run_with_a_bad_value_is_a_one_line_usage_error(
    operator_entry_point: list[OperatorSettings], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODELADAPTER_STABILITY_WINDOW", "-5")
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert err == "modeladapter run: --stability-window / MODELADAPTER_STABILITY_WINDOW: must not be negative, got -5\n"
    assert operator_entry_point == []


def test_the_backoff_base_is_at_most_the_longest_wait_and_gives_the_retry_policy() -> None:
    with pytest.raises(SettingsError, match=r"^--backoff-base / MODELADAPTER_BACKOFF_BASE: must be at most 300 s"):
        parse("--backoff-base", "6m")
    policy = parse("--backoff-base", "2").backoff_policy
    assert [policy.delay(attempt).total_seconds() for attempt in range(1, 5)] == [2, 4, 8, 16]
