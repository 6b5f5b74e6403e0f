"""The real-runtime lane: AIBrix's own runtime sidecar (`aibrix_runtime`, aibrix 0.8.0) and an S3 store (moto).

`prepare()` (run by `.ci/prepare/40-aibrix-runtime`) makes, once, outside the repository
(`$MODELADAPTER_AIBRIX_CACHE`, default `~/.cache/modeladapter`), two venvs of their own, because their
dependencies would clash with the project's and with vLLM's:

* `aibrix-venv/`: `aibrix==0.8.0`, whose `aibrix_runtime` is the sidecar the operator drives with
  `--enable-runtime-sidecar`;
* `moto-venv/`: `moto[server]==5.2.5` (with boto3), a local S3 endpoint the runtime downloads `s3://` adapters
  from, and the client that seeds it.

Each venv gets a stamp recording the recipe once it is complete, so an interrupted run is redone and a second
run only reads two stamps (well under a second). About 40 s from an empty pip cache.

`MotoServer` runs `moto_server` on a loopback address and uploads folders into a bucket; `AibrixRuntime` runs
one `aibrix_runtime` in front of an engine at `http://<host>:8000`, on `<host>:8080` as in a pod.

What the runtime cannot be told (aibrix 0.8.0, `runtime/artifact_service.py`): where to download. Every load
goes to `/tmp/aibrix/adapters/<lora_name>` (`ArtifactDelegationService()` is built with its default `local_dir`
on every request, and the request's `local_dir` is ignored), so every runtime on one machine shares that folder:
a second runtime finds the `.aibrix_download_complete` marker and skips its download, and an unload deletes the
folder for all of them. Tests therefore use adapter names of their own and clear those folders before they
start (`clear_downloads`). In a cluster each pod has its own `/tmp`, so this sharing exists only here.

Standard library only: the prepare step runs before the project's own venv exists, with the machine's python3.
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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final

AIBRIX_VERSION: Final = "0.8.0"
MOTO_VERSION: Final = "5.2.5"
VENVS: Final = {
    "aibrix-venv": (f"aibrix=={AIBRIX_VERSION}",),
    "moto-venv": (f"moto[server]=={MOTO_VERSION}", "boto3"),
}
CHECKS: Final = {
    "aibrix-venv": f"import importlib.metadata as m; assert m.version('aibrix') == '{AIBRIX_VERSION}'; import boto3",
    "moto-venv": f"import importlib.metadata as m; assert m.version('moto') == '{MOTO_VERSION}'; import boto3, flask",
}
STAMP: Final = ".modeladapter-lane.json"
PREPARE_HINT: Final = ".ci/prepare/40-aibrix-runtime"
ENGINE_VERSION: Final = "0.32.0"
"""What the runtime is told the engine is (`INFERENCE_ENGINE_VERSION`): at least 0.6.1, or it uses no LoRA API."""
RUNTIME_PORT: Final = 8080
DOWNLOADS: Final = Path("/tmp/aibrix/adapters")
"""Where every `aibrix_runtime` on this machine downloads adapter `<name>` to: `DOWNLOADS / <name>`."""
DOWNLOAD_COMPLETE_MARKER: Final = ".aibrix_download_complete"
SEEDING_KEYS: Final = {"AWS_ACCESS_KEY_ID": "lane-seeder", "AWS_SECRET_ACCESS_KEY": "lane-seeder"}
"""moto accepts any keys; these only let boto3 sign the seeding requests (never a test's credentials)."""


def cache_root() -> Path:
    return Path(os.environ.get("MODELADAPTER_AIBRIX_CACHE", "~/.cache/modeladapter")).expanduser()


@dataclass(frozen=True)
class RuntimeLane:
    root: Path = field(default_factory=cache_root)

    def venv(self, name: str) -> Path:
        return self.root / name

    @property
    def runtime_command(self) -> Path:
        return self.venv("aibrix-venv") / "bin" / "aibrix_runtime"

    @property
    def moto_command(self) -> Path:
        return self.venv("moto-venv") / "bin" / "moto_server"

    @property
    def moto_python(self) -> Path:
        return self.venv("moto-venv") / "bin" / "python"

    @property
    def logs(self) -> Path:
        return self.root / "aibrix-logs"

    def problem(self) -> str | None:
        """Why the lane cannot run now, or None when it is prepared."""
        for name in VENVS:
            if not _stamped(self.venv(name), name):
                return (
                    f"the real-runtime lane is not prepared ({self.venv(name)} is missing or incomplete); "
                    f"run {PREPARE_HINT} (about 40 seconds the first time)"
                )
        return None


def recipe(name: str) -> dict[str, object]:
    """What the stamp of venv `name` records: a venv built from another recipe is rebuilt."""
    return {"packages": list(VENVS[name]), "v": 1}


def _stamped(venv: Path, name: str) -> bool:
    try:
        return bool(json.loads((venv / STAMP).read_text()) == recipe(name))
    except (OSError, ValueError):
        return False


def prepare(lane: RuntimeLane | None = None, *, log: Callable[[str], None] = print) -> RuntimeLane:
    """Create whichever venv is missing or incomplete; idempotent."""
    lane = lane or RuntimeLane()
    lane.root.mkdir(parents=True, exist_ok=True)
    for name, packages in VENVS.items():
        venv = lane.venv(name)
        if _stamped(venv, name):
            log(f"{' '.join(packages)} is ready in {venv}")
            continue
        started = time.monotonic()
        if not (venv / "bin" / "python").exists():
            # A venv cannot be moved once made (its scripts hold absolute paths): built in place, and only the
            # stamp, written last, says it is complete. A half-built one is reused: pip completes it.
            log(f"creating {venv}")
            _run([sys.executable, "-m", "venv", str(venv)])
        python = str(venv / "bin" / "python")
        log(f"installing {' '.join(packages)} into {venv}")
        _run([python, "-m", "pip", "--disable-pip-version-check", "--no-input", "install", "--quiet", *packages])
        _run([python, "-c", CHECKS[name]])
        (venv / STAMP).write_text(json.dumps(recipe(name)))
        log(f"{venv.name} ready in {time.monotonic() - started:.0f} s")
    return lane


def _run(command: Sequence[str], *, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} ... failed with exit code {result.returncode}")


def clear_downloads(names: Iterable[str]) -> None:
    """Delete what any runtime on this machine downloaded for `names` (a marker left by an earlier run would
    make the runtime load those files instead of downloading)."""
    for name in names:
        shutil.rmtree(DOWNLOADS / name, ignore_errors=True)


class _Process:
    """A server process of the lane: its own session (so its whole group can be stopped) and its own log."""

    def __init__(self, what: str, log_path: Path) -> None:
        self.what = what
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def _launch(self, command: Sequence[str], env: dict[str, str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                list(command), env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

    def _wait_until(self, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                self.stop()
                raise RuntimeError(f"{self.what} exited with code {code} while starting:\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.what} did not answer within {timeout:.0f} s; see {self.log_path}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self, *, grace: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL what is left."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=grace)
        except (ProcessLookupError, PermissionError):
            pass
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        process.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


_SEED_SCRIPT: Final = """
import os, sys
import boto3
endpoint, bucket, prefix, folder = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
if bucket not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
    s3.create_bucket(Bucket=bucket)
for directory, _, files in os.walk(folder):
    for name in files:
        path = os.path.join(directory, name)
        s3.upload_file(path, bucket, prefix + os.path.relpath(path, folder).replace(os.sep, "/"))
"""


class MotoServer(_Process):
    """`moto_server` on `host:port`: an S3 endpoint (any credentials accepted), seeded with `upload`."""

    def __init__(self, host: str, port: int, *, lane: RuntimeLane | None = None) -> None:
        self.lane = lane or RuntimeLane()
        self.host = host
        self.port = port
        super().__init__(f"moto_server at {host}:{port}", self.lane.logs / f"moto-{host}-{port}.log")

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, *, timeout: float = 30.0) -> MotoServer:
        problem = self.lane.problem()
        if problem is not None:
            raise RuntimeError(problem)
        self._launch([str(self.lane.moto_command), "-H", self.host, "-p", str(self.port)], dict(os.environ))
        self._wait_until(lambda: _answers(f"{self.endpoint}/moto-api/"), timeout)
        return self

    def upload(self, folder: Path, bucket: str, prefix: str) -> None:
        """Put every file under `folder` into `bucket` as `<prefix><relative path>`, with boto3 (moto's venv)."""
        env = {**os.environ, **SEEDING_KEYS, "AWS_EC2_METADATA_DISABLED": "true"}
        result = subprocess.run(
            [str(self.lane.moto_python), "-c", _SEED_SCRIPT, self.endpoint, bucket, prefix, str(folder)],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"seeding s3://{bucket}/{prefix} failed:\n{result.stderr[-2000:]}")

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class AibrixRuntime(_Process):
    """One real `aibrix_runtime` on `host:8080` in front of the engine at `http://host:8000`, as in a pod.

    `s3_endpoint` is the S3 store it downloads from (`AWS_ENDPOINT_URL`). It gets no AWS credentials of its
    own: no `AWS_*` keys, no shared credentials or config file, no instance metadata; a download succeeds only
    with the credentials the load request carries. About 3-5 s to start.
    """

    def __init__(
        self,
        host: str,
        *,
        s3_endpoint: str,
        engine_url: str | None = None,
        port: int = RUNTIME_PORT,
        lane: RuntimeLane | None = None,
    ) -> None:
        self.lane = lane or RuntimeLane()
        self.host = host
        self.port = port
        self.engine_url = engine_url or f"http://{host}:8000"
        self.s3_endpoint = s3_endpoint
        self.state = self.lane.logs / f"runtime-{host}-{port}"
        super().__init__(f"aibrix_runtime at {host}:{port}", self.state / "runtime.log")

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def environment(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        return {
            **inherited,
            "INFERENCE_ENGINE": "vllm",
            "INFERENCE_ENGINE_VERSION": ENGINE_VERSION,
            "INFERENCE_ENGINE_ENDPOINT": self.engine_url,
            # The runtime empties this folder when it starts: each runtime needs its own.
            "PROMETHEUS_MULTIPROC_DIR": str(self.state / "prometheus"),
            "HF_HUB_OFFLINE": "1",
            "AWS_ENDPOINT_URL": self.s3_endpoint,
            "AWS_SHARED_CREDENTIALS_FILE": str(self.state / "no-aws-credentials"),
            "AWS_CONFIG_FILE": str(self.state / "no-aws-config"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def start(self, *, timeout: float = 60.0) -> AibrixRuntime:
        self.launch()
        self.wait(timeout=timeout)
        return self

    def launch(self) -> None:
        """Start the runtime and return at once (`wait` waits for it to answer)."""
        problem = self.lane.problem()
        if problem is not None:
            raise RuntimeError(problem)
        (self.state / "prometheus").mkdir(parents=True, exist_ok=True)
        command = [str(self.lane.runtime_command), "--host", self.host, "--port", str(self.port)]
        self._launch(command, self.environment())

    def wait(self, *, timeout: float = 60.0) -> None:
        self._wait_until(lambda: _answers(f"{self.base_url}/healthz"), timeout)

    def delegations(self, name: str) -> int:
        """How many loads of `name` with an artifact URL this runtime has started (from its log)."""
        return self.log().count(f"Starting artifact delegation for adapter {name} from ")

    def __enter__(self) -> AibrixRuntime:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aibrix_lane", description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("prepare", help="create the cached aibrix and moto venvs (idempotent)")
    commands.add_parser("status", help="say whether the lane is prepared")
    args = parser.parse_args(argv)
    lane = RuntimeLane()
    if args.command == "prepare":
        prepare(lane)
        return 0
    problem = lane.problem()
    print(problem or f"prepared: {', '.join(str(lane.venv(name)) for name in VENVS)}")
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main())
