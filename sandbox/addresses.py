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
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((address, ENGINE_PORT))
            except OSError as error:
                raise PortTaken(
                    f"port {ENGINE_PORT} on {address} is in use ({error.strerror or error}): is another "
                    "modeladapter sandbox (or an engine) running? Stop it, or give this one other pod addresses "
                    "with --first-pod-ip (e.g. 127.0.1.2)"
                ) from None
