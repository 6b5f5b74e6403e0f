"""The engine API key and the artifact credentials of an adapter, read fresh for each pass, never stored and
never shown; and the masking of everything the engines may echo back of them.

A referenced Secret that does not exist, or lacks the key, is a problem of the spec (it names the field),
which the reconcile turns into `Failed` with reason `SecretNotFound` until the Secret appears; an API key
that cannot be sent in a header (not printable ASCII, or too long) is `SecretInvalid`, the value never shown.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from modeladapter.adapters.connections import api_key_problem
from modeladapter.adapters.masking import NO_MASK, SecretMask
from modeladapter.fsm.events import SpecObserved
from modeladapter.operator.api.spec import AdapterSpec, SpecProblem
from modeladapter.operator.api.view import AdapterObject
from modeladapter.operator.kube.client import KubeApi, NotFound
from modeladapter.operator.kube.secret_values import NoRecordedKey, recorded_api_key, secret_data


@dataclass(frozen=True, slots=True)
class Credentials:
    api_key: str | None = field(default=None, repr=False)
    artifact: Mapping[str, str] = field(default_factory=dict, repr=False)
    """The `credentialsSecretRef` Secret's data, for the runtime sidecar."""
    mask: SecretMask = field(default=NO_MASK, repr=False)
    """Every secret value a call may carry, in every form an engine may echo (`modeladapter.adapters.masking`)."""

    def scrub(self, text: str) -> str:
        """`text` with every secret value masked: an engine may echo what it was sent in its error. The engine
        clients mask the key and the credentials they sent before they cut a message; this is the second net,
        for messages built anywhere else."""
        return self.mask.mask(text)


log = logging.getLogger(__name__)

NO_CREDENTIALS = Credentials()
NOT_FOUND = "SecretNotFound"


async def read_credentials(kube: KubeApi, adapter: AdapterObject, spec: AdapterSpec) -> Credentials | SpecProblem:
    namespace = adapter.ref.namespace
    api_key: str | None = None
    artifact: dict[str, str] = {}
    if spec.api_key_secret is not None:
        ref = spec.api_key_secret
        try:
            api_key = (await secret_data(kube, namespace, ref.name)).get(ref.key)
        except NotFound:
            return SpecProblem(
                "spec.apiKeySecretRef.name", f"Secret {namespace}/{ref.name} not found", reason=NOT_FOUND
            )
        if not api_key:
            return SpecProblem(
                "spec.apiKeySecretRef.key", f"Secret {namespace}/{ref.name} has no key {ref.key!r}", reason=NOT_FOUND
            )
        if (problem := api_key_problem(api_key)) is not None:
            return SpecProblem(
                "spec.apiKeySecretRef.key",
                f"the value of key {ref.key!r} of Secret {namespace}/{ref.name} {problem}",
                reason="SecretInvalid",
            )
    elif spec.has_inline_api_key:
        api_key = adapter.additional_config.get("api-key")
        if (problem := api_key_problem(api_key)) is not None:
            return SpecProblem('spec.additionalConfig["api-key"]', f"the API key {problem}")
    if spec.credentials_secret is not None:
        try:
            artifact = await secret_data(kube, namespace, spec.credentials_secret)
        except NotFound:
            return SpecProblem(
                "spec.credentialsSecretRef.name",
                f"Secret {namespace}/{spec.credentials_secret} not found",
                reason=NOT_FOUND,
            )
    return Credentials(api_key=api_key, artifact=artifact, mask=_mask(api_key, artifact, adapter))


async def read_recorded_key(kube: KubeApi, namespace: str, spec: SpecObserved | None) -> Credentials:
    """The API key of an adapter that is gone, from the Secret its log recorded (`recorded_api_key`); without
    one, the unload goes without a key."""
    try:
        api_key = await recorded_api_key(kube, namespace, spec)
    except NoRecordedKey as missing:
        log.warning("%s: unloading without a key", missing)
        return NO_CREDENTIALS
    if api_key is None:
        return NO_CREDENTIALS
    return Credentials(api_key=api_key, mask=SecretMask([api_key]))


def _mask(api_key: str | None, artifact: Mapping[str, str], adapter: AdapterObject) -> SecretMask:
    """Values from Secrets are masked from 4 characters on, and from 8 on in fragments too; the other
    `additionalConfig` values (mostly options such as `true` or `16`, now and then a token) whole from 6, so
    that masking them does not garble every message."""
    secrets = [v for v in (api_key or "", *artifact.values()) if len(v) >= 4]
    options = [text for key, text in adapter.additional_config.items() if key != "api-key" and len(text) >= 6]
    return SecretMask(secrets, whole_only=options)
