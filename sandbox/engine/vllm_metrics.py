"""vLLM's Prometheus `/metrics`, the part that says what a LoRA engine is doing: the scheduler's request gauges and
`vllm:lora_requests_info`, with vLLM's names, help texts and label sets (`vllm/v1/metrics/loggers.py`,
`PrometheusStatLogger`):

* `vllm:num_requests_running`, `vllm:num_requests_waiting`: gauges labelled `engine` (the engine core's index,
  "0" without data parallelism) and `model_name` (the served model name);
* `vllm:lora_requests_info`: a gauge labelled `max_lora` (`--max-loras`), `running_lora_adapters` and
  `waiting_lora_adapters` (the names of the adapters that have requests running / waiting, comma-joined, in
  order of first appearance); its value is the Unix time the engine last set it. vLLM sets it on every engine
  step and never removes a label combination, so there is one series per combination ever seen, and a reader
  takes the one with the newest value. It reports requests in flight, not residency: an idle adapter, loaded
  or evicted, appears in no label.

At most `max_loras` distinct adapters run at once; requests for another adapter wait. The simulation counts
them as waiting but does not hold them back (a simulated request lasts as long as an injected delay says).
Labels are written sorted by name, as a real vLLM's `/metrics` shows them. `/metrics` is never behind
`--api-key` (vLLM guards only `/v1` and a few other prefixes).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

REQUESTS_RUNNING: Final = "vllm:num_requests_running"
REQUESTS_WAITING: Final = "vllm:num_requests_waiting"
LORA_REQUESTS_INFO: Final = "vllm:lora_requests_info"
ENGINE_INDEX: Final = "0"


@dataclass(frozen=True, slots=True)
class Schedule:
    """Which requests in flight run and which wait, as vLLM's scheduler splits them by LoRA slots."""

    running: tuple[str, ...]
    """The model (base model or adapter name) of each running request."""
    waiting: tuple[str, ...]
    running_adapters: tuple[str, ...]
    waiting_adapters: tuple[str, ...]


def schedule(in_flight: Sequence[str], *, base_model: str, max_loras: int) -> Schedule:
    """Split the requests in flight (their models, oldest first): a base-model request always runs; a LoRA
    request runs if its adapter already runs or one of the `max_loras` slots is free, else it waits."""
    running: list[str] = []
    waiting: list[str] = []
    running_adapters: dict[str, None] = {}
    waiting_adapters: dict[str, None] = {}
    for model in in_flight:
        if model == base_model:
            running.append(model)
        elif model in running_adapters or len(running_adapters) < max_loras:
            running.append(model)
            running_adapters[model] = None
        else:
            waiting.append(model)
            waiting_adapters[model] = None
    return Schedule(tuple(running), tuple(waiting), tuple(running_adapters), tuple(waiting_adapters))


class EngineMetrics(Collector):
    """One engine's requests in flight and the `vllm:lora_requests_info` series they have set."""

    def __init__(self, *, model_name: str, max_loras: int) -> None:
        self.model_name = model_name
        self.max_loras = max_loras
        self._in_flight: list[str] = []
        self._lora_info: dict[tuple[str, str], float] = {}
        """(running_lora_adapters, waiting_lora_adapters) -> when it was last set."""

    @contextmanager
    def request(self, model: str) -> Iterator[None]:
        """A request for `model` is in flight meanwhile; its start and its end are each an engine step."""
        self._in_flight.append(model)
        self._step()
        try:
            yield
        finally:
            self._in_flight.remove(model)
            self._step()

    def schedule(self) -> Schedule:
        return schedule(self._in_flight, base_model=self.model_name, max_loras=self.max_loras)

    def forget_series(self) -> None:
        """A restarted engine is a new process: the series it had set are gone."""
        self._lora_info.clear()

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition and its content type, chosen from the Accept header as vLLM's `make_asgi_app` does."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self), content_type

    def collect(self) -> Iterable[Metric]:
        now = self.schedule()
        for name, documentation, count in (
            (REQUESTS_RUNNING, "Number of requests in model execution batches.", len(now.running)),
            (REQUESTS_WAITING, "Number of requests waiting to be processed.", len(now.waiting)),
        ):
            gauge = GaugeMetricFamily(name, documentation, labels=["engine", "model_name"])
            gauge.add_metric([ENGINE_INDEX, self.model_name], float(count))
            yield gauge
        info = GaugeMetricFamily(LORA_REQUESTS_INFO, "Running stats on lora requests.",
                                 labels=["max_lora", "running_lora_adapters", "waiting_lora_adapters"])  # fmt: skip
        for (running, waiting), when in self._lora_info.items():
            info.add_metric([str(self.max_loras), running, waiting], when)
        yield info

    def _step(self) -> None:
        now = self.schedule()
        self._lora_info[(",".join(now.running_adapters), ",".join(now.waiting_adapters))] = time.time()
