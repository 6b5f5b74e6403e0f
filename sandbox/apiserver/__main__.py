"""Serve the emulator alone: `python -m modeladapter.sandbox.apiserver --host H --port P --kubeconfig FILE`.

The cluster starts empty (the `default`, `kube-system`, `kube-public` and `kube-node-lease` namespaces, no CRDs)
and the kubeconfig written points kubectl and kubernetes-asyncio at it. Stops on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from modeladapter.sandbox.apiserver.server import ApiServer


async def serve(host: str, port: int, kubeconfig: str | None, token: str | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with ApiServer(host=host, port=port, token=token) as server:
        if kubeconfig:
            server.write_kubeconfig(kubeconfig)
        print(
            f"Kubernetes API emulator serving on {server.url}"
            + (f"; kubeconfig written to {kubeconfig}" if kubeconfig else ""),
            flush=True,
        )
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modeladapter.sandbox.apiserver", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=6443, help="port to listen on; 0 picks a free one (default 6443)")
    parser.add_argument("--kubeconfig", help="write a kubeconfig for this server to FILE")
    parser.add_argument("--token", help="bearer token clients must send (default: a random one, in the kubeconfig)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.host, args.port, args.kubeconfig, args.token))
    except OSError as error:
        print(f"cannot serve on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
