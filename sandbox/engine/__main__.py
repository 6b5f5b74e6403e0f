"""`python -m modeladapter.sandbox.engine --host IP --port PORT [--api-key KEY] [--served-model-name NAME]`:
serve one simulated engine alone, in the foreground, until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from modeladapter.sandbox.engine.server import EngineFlavor, SimulatedEngine


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m modeladapter.sandbox.engine",
        description="A simulated vLLM 0.32 server (runtime LoRA API, /v1/models, /v1/completions, /health, /metrics).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    parser.add_argument("--api-key", help="require `Authorization: Bearer KEY` on /v1/* (like vLLM's --api-key)")
    parser.add_argument("--served-model-name", default="tiny", help="the base model's id (default tiny)")
    parser.add_argument("--max-lora-rank", type=int, default=16, help="largest adapter rank accepted (default 16)")
    parser.add_argument("--max-loras", type=int, default=1, help="adapters one batch can use (default 1)")
    parser.add_argument(
        "--max-cpu-loras",
        type=int,
        help="adapters the worker keeps cached, evicting the least recently used (default all)",
    )
    parser.add_argument(
        "--max-adapters", type=int, help="not vLLM: refuse loads beyond this many registered adapters (default none)"
    )
    parser.add_argument("--flavor", choices=[f.value for f in EngineFlavor], default=EngineFlavor.VLLM.value)
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    engine = SimulatedEngine(
        args.host, args.port, flavor=args.flavor, api_key=args.api_key, served_model_name=args.served_model_name,
        max_lora_rank=args.max_lora_rank, max_loras=args.max_loras, max_cpu_loras=args.max_cpu_loras,
        max_adapters=args.max_adapters,
    )  # fmt: skip
    await engine.start()
    print(f"simulated {engine.flavor} serving {engine.served_model_name!r} at {engine.base_url}", flush=True)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stopped.set)
    try:
        await stopped.wait()
    finally:
        await engine.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(serve(args))
    except OSError as error:
        print(f"cannot serve on {args.host}:{args.port}: {error.strerror or error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
