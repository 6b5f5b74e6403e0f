"""`modeladapter sandbox --runtime aibrix`: AIBrix's real runtime beside each engine, and a local S3 store.

    async with RuntimeSidecars(pod_ips, sample=Path("...peft dir"), say=print) as sidecars:
        sidecars.sample_url          # s3://modeladapter-sandbox/qwen-code-lora/, what the sample adapter loads
        sidecars.secret()            # the Secret its credentialsSecretRef names

Entering starts `moto_server` (a real S3 endpoint) on a free loopback port, uploads the sample's PEFT folder to
`s3://modeladapter-sandbox/qwen-code-lora/`, then one `aibrix_runtime` (aibrix 0.8.0, from the lane
`.ci/prepare/40-aibrix-runtime` prepares) per pod on `<podIP>:8080`, in front of the pod's engine on
`<podIP>:8000`, as the sidecar container of an AIBrix pod. The runtimes get no credentials of their own: a
download works only with the keys of the adapter's Secret, which the operator sends with each load. Leaving
stops them all and deletes what they downloaded.

Every runtime on one machine downloads into `/tmp/aibrix/adapters/<name>` (the runtime cannot be told where), so
the three pods share one folder per adapter: the first download is reused by the others, and an unload on one
pod deletes the folder for all. In a cluster each pod has its own `/tmp`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from modeladapter.sandbox.addresses import free_port
from modeladapter.sandbox.engine.aibrix_lane import AibrixRuntime, MotoServer, RuntimeLane, clear_downloads

BUCKET: Final = "modeladapter-sandbox"
SECRET_NAME: Final = "sandbox-s3-credentials"
SAMPLE_PREFIX: Final = "qwen-code-lora/"
RUNTIME_CONTAINER: Final = {
    "name": "aibrix-runtime",
    "image": "aibrix/runtime:v0.8.0",
    "ports": [{"containerPort": 8080}],
}
# moto accepts any key; these are the sandbox's own, shown to no one but the runtime that needs them.
_KEYS: Final = {
    "aws_access_key_id": "sandbox-key-id",
    "aws_secret_access_key": "sandbox-secret-key",
    "aws_region": "us-east-1",
}


class RuntimeSidecars:
    def __init__(
        self, pod_ips: Sequence[str], *, sample: Path, adapters: Sequence[str], say: Callable[[str], None]
    ) -> None:
        self.lane = RuntimeLane()
        self.pod_ips = list(pod_ips)
        self.sample = sample
        self.adapters = list(adapters)
        """The adapter names the sandbox applies: their shared download folders are cleared on the way out."""
        self.say = say
        self.store: MotoServer | None = None
        self.runtimes: list[AibrixRuntime] = []

    @property
    def sample_url(self) -> str:
        return f"s3://{BUCKET}/{SAMPLE_PREFIX}"

    def secret(self, namespace: str = "default") -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET_NAME, "namespace": namespace},
            "type": "Opaque",
            "stringData": dict(_KEYS),
        }

    def problem(self) -> str | None:
        return self.lane.problem()

    async def __aenter__(self) -> RuntimeSidecars:
        try:
            await asyncio.to_thread(self._start)
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def _start(self) -> None:
        clear_downloads(self.adapters)
        self.store = MotoServer("127.0.0.1", free_port(), lane=self.lane)
        self.store.start()
        self.store.upload(self.sample, BUCKET, SAMPLE_PREFIX)
        self.say(f"S3 store (moto) at {self.store.endpoint} holds the sample adapter at {self.sample_url}")
        for ip in self.pod_ips:
            runtime = AibrixRuntime(ip, s3_endpoint=self.store.endpoint, lane=self.lane)
            self.runtimes.append(runtime)
            runtime.launch()
        for runtime in self.runtimes:
            runtime.wait()
            self.say(f"AIBrix runtime 0.8.0 at {runtime.base_url} in front of {runtime.engine_url}")

    async def aclose(self) -> None:
        await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        runtimes, self.runtimes = self.runtimes, []
        for runtime in runtimes:
            runtime.stop()
        if self.store is not None:
            self.store.stop()
            self.store = None
        clear_downloads(self.adapters)
