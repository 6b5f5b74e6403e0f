"""The sandbox's pod addresses: consecutive loopback addresses, each with an engine on port 8000."""

from __future__ import annotations

import ipaddress
import socket
from typing import Final


class PortTaken(RuntimeError):
    """An address the sandbox needs is in use; the message is one line that says what to do."""


ENGINE_PORT: Final = 8000
FIRST_POD_IP: Final = "127.0.0.2"
LAST_POD_IP: Final = "127.255.255.254"
MAX_PODS: Final = int(ipaddress.IPv4Address(LAST_POD_IP)) - int(ipaddress.IPv4Address(FIRST_POD_IP)) + 1
"""Pods get consecutive addresses from 127.0.0.2 to 127.255.255.254: that many fit on loopback."""


def max_pods(first_pod_ip: str = FIRST_POD_IP) -> int:
    """How many consecutive pod addresses fit on loopback from `first_pod_ip` up to 127.255.255.254."""
    return int(ipaddress.IPv4Address(LAST_POD_IP)) - int(ipaddress.IPv4Address(first_pod_ip)) + 1


def check_ports_free(addresses: list[str]) -> None:
    """Port 8000 must be free on every pod address (another sandbox, or a stray engine, may hold it)."""
    for address in addresses:
        reason = port_in_use(address, ENGINE_PORT)
        if reason is not None:
            raise PortTaken(
                f"port {ENGINE_PORT} on {address} is in use ({reason}): is another modeladapter sandbox (or an "
                "engine) running? Stop it, or give this one other pod addresses with --first-pod-ip (e.g. 127.0.1.2)"
            )


def port_in_use(host: str, port: int) -> str | None:
    """Why `host:port` cannot be listened on now (None: it can)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return str(error.strerror or error)
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` now (for a server the sandbox starts next)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
