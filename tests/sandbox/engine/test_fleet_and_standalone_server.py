"""Many simulated engines in one process on 127.0.0.2, 127.0.0.3, ... port 8000, and one engine alone with
`python -m modeladapter.sandbox.engine`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from modeladapter.sandbox.engine import EngineFleet, loopback_addresses, write_peft_adapter

REPO = Path(__file__).resolve().parents[3]


async def test_a_fleet_gives_each_engine_its_own_loopback_ip_on_port_8000(tmp_path: Path) -> None:
    lora = write_peft_adapter(tmp_path / "lora")
    async with EngineFleet(3) as fleet:
        assert [e.base_url for e in fleet.engines] == [f"http://127.0.0.{i}:8000" for i in (2, 3, 4)]
        async with httpx.AsyncClient() as http:
            answer = await http.post("http://127.0.0.3:8000/v1/load_lora_adapter",
                                     json={"lora_name": "sql", "lora_path": str(lora)})  # fmt: skip
            assert answer.status_code == 200
            assert list(fleet.by_ip["127.0.0.3"].adapters) == ["sql"]
            assert fleet.by_ip["127.0.0.2"].adapters == {} and fleet.by_ip["127.0.0.4"].adapters == {}
            assert (await http.get("http://127.0.0.4:8000/health")).status_code == 200
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get("http://127.0.0.2:8000/health")


def test_loopback_addresses_stay_in_127_0_0_0_8() -> None:
    assert loopback_addresses(3) == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    assert loopback_addresses(2, first="127.0.0.255") == ["127.0.0.255", "127.0.1.0"]
    with pytest.raises(ValueError):
        loopback_addresses(3, first="127.255.255.254")


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def test_python_m_serves_one_engine_with_a_key_and_a_model_name() -> None:
    host, port = "127.0.0.5", free_port("127.0.0.5")
    command = [sys.executable, "-m", "modeladapter.sandbox.engine", "--host", host, "--port", str(port),
               "--api-key", "k-9", "--served-model-name", "llama2-7b"]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = process.stdout.readline() if process.stdout else ""
        assert f"at http://{host}:{port}" in banner, banner + (process.stderr.read() if process.stderr else "")
        with httpx.Client(base_url=f"http://{host}:{port}") as http:
            assert http.get("/v1/models").status_code == 401
            models = http.get("/v1/models", headers={"Authorization": "Bearer k-9"}).json()
            assert [m["id"] for m in models["data"]] == ["llama2-7b"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_python_m_says_clearly_when_the_address_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "modeladapter.sandbox.engine", "--host", "127.0.0.1",
                                 "--port", str(port)], cwd=REPO, capture_output=True, text=True, timeout=30,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    assert result.returncode == 1
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr


def test_python_m_help_lists_the_options() -> None:
    result = subprocess.run([sys.executable, "-m", "modeladapter.sandbox.engine", "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert result.returncode == 0
    for option in ("--host", "--port", "--api-key", "--served-model-name"):
        assert option in result.stdout
