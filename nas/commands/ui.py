"""``nas ui``: the MLflow UI on a search's store, and the link that opens its trials sorted
by val_acc with the key columns shown (:mod:`nas.tracking.view`).

With a local store (``sqlite:///WORKDIR/mlflow.db``, the default) it starts ``mlflow
server`` on ``--host:--port`` (one worker), prints the link of every search in the store
(or of ``--name``) and serves until Ctrl-C. With a tracking server (``--tracking-uri
http://...`` or the search's own) it only prints the links: that server is the UI.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from nas.core.config import DEFAULT_WORKDIR
from nas.core.credentials import mask_url

#: How long the MLflow server may take to answer before ``nas ui`` gives up.
START_TIMEOUT_S = 120.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ui",
        help="open the MLflow UI on a search's runs and print the link to its trials",
        description=__doc__,
    )
    p.add_argument("--workdir", default=DEFAULT_WORKDIR, help="the searches' working folder")
    p.add_argument("--name", default=None, help="one search (default: every search in the store)")
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="the MLflow store (default: the search's, else sqlite:///WORKDIR/mlflow.db)",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface the UI listens on")
    p.add_argument("--port", type=int, default=5000, help="port the UI listens on")
    p.set_defaults(func=run)


def _tracking_uri(args: argparse.Namespace) -> str:
    from nas.core.config import default_tracking_uri, search_tracking_uri
    from nas.core.errors import UsageError

    if args.tracking_uri:
        return args.tracking_uri
    workdir = Path(args.workdir)
    if args.name:
        uri = search_tracking_uri(workdir, args.name)
        if uri:
            return uri
    if not (workdir / "mlflow.db").is_file():
        raise UsageError(f"--workdir {args.workdir!r}: no MLflow store there (no mlflow.db)")
    return default_tracking_uri(workdir)


def experiments(tracking_uri: str, name: str | None) -> list[tuple[str, str]]:
    """(name, experiment id) of the searches in the store (``name`` alone, when given)."""
    from nas.core.errors import UsageError
    from nas.tracking import store as mlflow_store

    client = mlflow_store.client(tracking_uri)
    found = [
        (e.name, e.experiment_id)
        for e in client.search_experiments(filter_string="tags.`nas.study` != ''")
    ]
    if name is not None:
        found = [(n, i) for n, i in found if n == name]
        if not found:
            raise UsageError(f"--name {name!r}: no search of that name in {mask_url(tracking_uri)}")
    elif not found:
        raise UsageError(f"--tracking-uri {mask_url(tracking_uri)!r}: no search in that store yet")
    return sorted(found)


def _print_links(base: str, found: list[tuple[str, str]]) -> None:
    from nas.tracking.view import link

    for name, experiment_id in found:
        print(f"{name}: {link(base, experiment_id)}", flush=True)


def _check_port(host: str, port: int) -> None:
    from nas.core.errors import UsageError

    if not 0 < port < 65536:
        raise UsageError(f"--port {port}: expected a port number in 1..65535")
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise UsageError(
                f"--port {port}: {host}:{port} is taken ({exc.strerror}); pick another --port"
            ) from None


def serve(tracking_uri: str, host: str, port: int) -> subprocess.Popen:
    """Start ``mlflow server`` on the store and return once it answers (or raise)."""
    from nas.core.errors import UsageError

    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri,
           "--host", host, "--port", str(port), "--workers", "1"]  # fmt: skip
    # its own process group: stopping it stops the uvicorn worker it starts too
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (proc.stderr.read() if proc.stderr else "").strip().splitlines()[-1:]
            raise UsageError(f"mlflow server exited with {proc.returncode}: {' '.join(tail)}")
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.3)
    stop(proc)
    raise UsageError(f"mlflow server did not answer on {host}:{port} in {START_TIMEOUT_S:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    """Stop the server and everything it started (its process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    tracking_uri = _tracking_uri(args)
    found = experiments(tracking_uri, args.name)
    if tracking_uri.startswith(("http://", "https://")):
        _print_links(tracking_uri, found)
        return 0
    _check_port(args.host, args.port)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the server as Ctrl-C does
    proc = serve(tracking_uri, args.host, args.port)
    if proc.stderr is not None:  # the server's log is not ours to show; do not let it block
        import threading

        threading.Thread(target=proc.stderr.read, daemon=True).start()
    _print_links(f"http://{args.host}:{args.port}", found)
    print("nas: serving the MLflow UI; Ctrl-C stops it", file=sys.stderr, flush=True)
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        code = 0
    finally:
        stop(proc)
    if code:
        print(f"nas: error: mlflow server exited with {code}", file=sys.stderr)
        return 1
    return 0
