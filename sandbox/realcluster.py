"""A real kube-apiserver v1.20.2 with etcd and kube-controller-manager: the oracle the emulator is checked against.

The binaries are the ones `.ci/prepare/20-kube-apiserver` builds from Debian's `kubernetes` source package and
caches in `~/.cache/modeladapter/kube-v1.20.2/bin` (or `$MODELADAPTER_KUBE_CACHE/bin`); etcd is Debian's
`etcd-server`. `RealCluster.start()` runs all three on free loopback ports in a temporary directory:

* etcd, with its data in memory-backed storage when /dev/shm exists;
* kube-apiserver with TLS (a self-signed serving certificate it makes itself; clients skip verification), a
  static bearer token for a `system:masters` user, `AlwaysAllow` authorization, a service CIDR of
  10.96.0.0/16 (the emulator's), and the ServiceAccount admission plugin off (no kubelet and no token
  controller here, and the emulator injects no service-account volumes either);
* kube-controller-manager with only the `garbagecollector` and `namespace` controllers: ownerReference garbage
  collection and namespace cleanup, the two background behaviours the emulator also has.

CRDs passed to `start` are installed before kube-controller-manager starts, so its garbage collector knows
their resources at once instead of after its 30 s discovery resync.

Missing binaries raise `RealClusterUnavailable` naming the prepare script: the tests fail, never skip.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PREPARE_SCRIPT = ".ci/prepare/20-kube-apiserver"
VERSION = "v1.20.2"


class RealClusterUnavailable(RuntimeError):
    """The binaries of the real-server lane are not installed or not built."""


def cache_dir() -> Path:
    configured = os.environ.get("MODELADAPTER_KUBE_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "modeladapter" / f"kube-{VERSION}"


def binaries() -> dict[str, Path]:
    """The four programs of the real lane, or RealClusterUnavailable saying what is missing and how to get it."""
    bin_dir = cache_dir() / "bin"
    found = {name: bin_dir / name for name in ("kube-apiserver", "kube-controller-manager", "kubectl")}
    etcd = shutil.which("etcd")
    missing = [str(path) for path in found.values() if not os.access(path, os.X_OK)]
    if etcd is None:
        missing.append("etcd (Debian package etcd-server)")
    if missing:
        raise RealClusterUnavailable(
            f"the real kube-apiserver lane needs {', '.join(missing)}; run {PREPARE_SCRIPT} from the repository "
            "root (it installs etcd-server and builds kube-apiserver and kube-controller-manager "
            f"{VERSION} once, about 11 minutes on 2 cores, then caches them)"
        )
    found["etcd"] = Path(etcd or "etcd")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RealCluster:
    """A running etcd + kube-apiserver + kube-controller-manager; `stop()` ends them and removes their files."""

    url: str
    token: str
    workdir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def kubeconfig_path(self) -> Path:
        return self.workdir / "kubeconfig"

    def kubeconfig(self, *, namespace: str = "default") -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "real", "cluster": {"server": self.url, "insecure-skip-tls-verify": True}}],
            "users": [{"name": "real", "user": {"token": self.token}}],
            "contexts": [{"name": "real", "context": {"cluster": "real", "user": "real", "namespace": namespace}}],
            "current-context": "real",
        }

    def write_kubeconfig(self, path: str | Path, *, namespace: str = "default") -> Path:
        target = Path(path)
        target.write_text(yaml.safe_dump(self.kubeconfig(namespace=namespace), sort_keys=False))
        return target

    # --- start and stop -----------------------------------------------------------------------------------------

    @classmethod
    def start(cls, *, crds: Sequence[dict[str, Any]] = (), timeout: float = 90.0) -> RealCluster:
        programs = binaries()
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        workdir = Path(tempfile.mkdtemp(prefix="modeladapter-kube-", dir=base))
        token = os.urandom(16).hex()
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        cluster = cls(url=f"https://127.0.0.1:{api_port}", token=token, workdir=workdir)
        try:
            subprocess.run(
                ["openssl", "genrsa", "-out", str(workdir / "sa.key"), "2048"], check=True, capture_output=True
            )
            (workdir / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')
            cluster._spawn(
                "etcd",
                [
                    str(programs["etcd"]),
                    "--data-dir",
                    str(workdir / "etcd"),
                    "--name",
                    "default",
                    "--listen-client-urls",
                    f"http://127.0.0.1:{etcd_port}",
                    "--advertise-client-urls",
                    f"http://127.0.0.1:{etcd_port}",
                    "--listen-peer-urls",
                    f"http://127.0.0.1:{peer_port}",
                    "--initial-advertise-peer-urls",
                    f"http://127.0.0.1:{peer_port}",
                    "--initial-cluster",
                    f"default=http://127.0.0.1:{peer_port}",
                    "--log-level",
                    "warn",
                ],
            )
            cluster._spawn(
                "kube-apiserver",
                [
                    str(programs["kube-apiserver"]),
                    f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={api_port}",
                    "--insecure-port=0",
                    f"--cert-dir={workdir / 'certs'}",
                    f"--token-auth-file={workdir / 'tokens.csv'}",
                    "--authorization-mode=AlwaysAllow",
                    f"--service-account-key-file={workdir / 'sa.key'}",
                    f"--service-account-signing-key-file={workdir / 'sa.key'}",
                    "--service-account-issuer=https://kubernetes.default.svc",
                    "--service-cluster-ip-range=10.96.0.0/16",
                    "--disable-admission-plugins=ServiceAccount",
                    "--enable-priority-and-fairness=false",
                    "--v=0",
                ],
            )
            cluster.wait_ready(timeout)
            for crd in crds:
                cluster.install_crd(crd, timeout=timeout)
            cluster.write_kubeconfig(cluster.kubeconfig_path)
            cluster._spawn(
                "kube-controller-manager",
                [
                    str(programs["kube-controller-manager"]),
                    f"--kubeconfig={cluster.kubeconfig_path}",
                    "--controllers=garbagecollector,namespace",
                    "--leader-elect=false",
                    "--port=0",
                    "--secure-port=0",
                    "--use-service-account-credentials=false",
                    "--v=0",
                ],
            )
            time.sleep(1.0)
            cluster._check_alive()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - kept open for the process's life
        self.processes[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")

    def stop(self) -> None:
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            process = self.processes.pop(name, None)
            if process is None:
                continue
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RealCluster:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- plain HTTP helpers (no event loop needed) ----------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as response:
                text = response.read().decode()
                return response.status, json.loads(text) if text.startswith("{") else text
        except urllib.error.HTTPError as error:
            text = error.read().decode()
            return error.code, json.loads(text) if text.startswith("{") else text

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                status, body = self.request("GET", "/readyz")
                if status == 200:
                    status, body = self.request("GET", "/api/v1/namespaces/default")
                    if status == 200:
                        return
                last = body
            except (urllib.error.URLError, ConnectionError, OSError) as error:
                last = error
            time.sleep(0.3)
        raise RuntimeError(f"kube-apiserver was not ready after {timeout:.0f} s: {last}")

    def install_crd(self, crd: dict[str, Any], *, timeout: float = 60.0) -> None:
        status, body = self.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        if status not in (201, 409):
            raise RuntimeError(f"installing CRD {crd['metadata']['name']} failed: {status} {body}")
        name = crd["metadata"]["name"]
        spec = crd["spec"]
        served = f"/apis/{spec['group']}/{spec['versions'][0]['name']}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, current = self.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
            conditions = (current.get("status") or {}).get("conditions") or [] if isinstance(current, dict) else []
            established = any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)
            if established and self.request("GET", served)[0] == 200:
                return
            time.sleep(0.2)
        raise RuntimeError(f"CRD {name} was not established after {timeout:.0f} s")
