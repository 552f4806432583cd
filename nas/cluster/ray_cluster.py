"""Where a search runs: a local Ray sized to this machine, or an existing Ray cluster.

On a cluster (``--ray-address``) nothing of the driver's disk is assumed on the other nodes:

- the project's code travels with Ray's ``runtime_env`` (``py_modules``), so a node needs
  only the Python dependencies installed (the same image, or ``pip install`` of them);
- the dataset travels through Ray's object store (:func:`nas.driver.search_run.run_search` puts it
  there once; see ``workers.trainable``);
- trial checkpoints go to ``--checkpoint-uri``, a path every node mounts at the same place
  or an object-store URI that pyarrow understands (``s3://``, ``gs://``).
  :func:`check_nodes_reach` proves that every alive node can write and read there, with a
  tiny task pinned to each node, before anything is written to the stores.

Ray 2.60 clusters started with ``ray start`` use token authentication: the driver needs
``RAY_AUTH_MODE=token`` and the cluster's token (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``
or ``~/.ray/auth_token``); without it the connection fails with one line saying so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nas.core.credentials import mask_url
from nas.core.errors import UsageError

#: The packages a worker node imports; they reach it through ``runtime_env``.
CODE_PACKAGES = ("nas", "workers", "search_spaces")
#: Environment every trial process gets, on this machine and on cluster nodes.
WORKER_ENV = {"RAY_CHDIR_TO_TRIAL_DIR": "0"}
#: Seconds a node may take to run the probe (a fresh node first installs the code package).
PROBE_TIMEOUT_S = 180.0
AUTH_HELP = (
    "set RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN (or a file named by "
    "RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token), as on its nodes"
)


def start_ray(address: str | None) -> None:
    """Connect to the cluster at ``address`` (``--ray-address``), shipping the project's
    code to its nodes, or start a local Ray sized to this machine. A cluster that refuses
    or does not answer raises :class:`UsageError`."""
    import ray

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": True,
        "logging_level": logging.ERROR,
    }
    if not address:
        ray.init(num_cpus=os.cpu_count() or 1, **kwargs)
        return
    with _stderr_kept_unless_needed() as replay:
        try:
            ray.init(address=address, runtime_env=code_runtime_env(), **kwargs)
        except ray.exceptions.AuthenticationError:
            raise UsageError(f"--ray-address {address!r}: no Ray token here; {AUTH_HELP}") from None
        except ConnectionError as exc:
            raise UsageError(_connection_error(address, exc)) from None
        replay()


def code_runtime_env() -> dict[str, Any]:
    """Ray ``runtime_env`` that ships :data:`CODE_PACKAGES` from this checkout to every node."""
    import importlib

    folders = [str(Path(importlib.import_module(p).__file__).parent) for p in CODE_PACKAGES]
    return {"py_modules": folders, "env_vars": dict(WORKER_ENV)}


def _connection_error(address: str, exc: BaseException) -> str:
    """One line for a failed connection: a refused token, or nothing there."""
    text = " ".join(str(e) for e in (exc, exc.__cause__, exc.__context__) if e is not None)
    if "Unauthenticated" in text or "InvalidAuthToken" in text:
        token_mode = os.environ.get("RAY_AUTH_MODE", "").lower() == "token"
        what = "refused this driver's token" if token_mode else "requires a token"
        return f"--ray-address {address!r}: the cluster {what}; {AUTH_HELP}"
    return (
        f"--ray-address {address!r}: no Ray cluster answered; expected HOST:PORT of a running "
        "head (ray start --head --port PORT), reachable from here"
    )


@contextlib.contextmanager
def _stderr_kept_unless_needed() -> Iterator[Any]:
    """Hold back what Ray's C++ core writes to stderr while it connects (a failed connection
    retries for ~20 s, one warning a second); ``replay()`` passes it on after a success.
    On failure it is dropped: the caller's one line says what went wrong."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        replayed = False

        def replay() -> None:
            nonlocal replayed
            os.dup2(saved, 2)
            replayed = True
            held.seek(0)
            text = held.read()
            if text:
                os.write(2, text)

        try:
            yield replay
        finally:
            if not replayed:
                os.dup2(saved, 2)
            os.close(saved)


def resolve_checkpoint_uri(value: str) -> str:
    """``--checkpoint-uri`` as Ray Tune's ``storage_path``: a URI as given, a path made
    absolute. Raises :class:`UsageError` for a scheme pyarrow does not know."""
    if "://" not in value:
        return str(Path(value).expanduser().resolve())
    import pyarrow.fs

    try:
        pyarrow.fs.FileSystem.from_uri(value)
    except (ValueError, OSError) as exc:
        raise UsageError(
            f"--checkpoint-uri {value!r}: {_first_line(exc)}; expected a shared path or a "
            "URI such as s3://BUCKET/PATH, gs://BUCKET/PATH or file:///PATH"
        ) from None
    return value


def probe_storage(uri: str) -> str | None:
    """Write, read back and delete a small file under ``uri``; None when that worked, else
    what failed (one line)."""
    token = uuid.uuid4().hex
    path = f"{uri.rstrip('/')}/.nas-probe-{token}"
    problem = _write(path, token) or _read(path, token)
    _delete(path)
    return problem


def check_nodes_reach(uri: str) -> None:
    """Prove that every alive node of the connected cluster shares ``uri`` with this driver:
    the driver writes a probe, a task pinned to each node reads it and writes its answer
    beside it, and the driver reads every answer. The first node that cannot raises
    :class:`UsageError` naming the node and ``uri`` (a node that only wrote to its own disk
    at that path fails too: it does not see the driver's probe)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = uuid.uuid4().hex
    probe = f"{uri.rstrip('/')}/.nas-probe-{token}"
    problem = _write(probe, token)
    if problem:
        raise UsageError(
            f"--checkpoint-uri {mask_url(uri)!r}: this driver cannot write there ({problem})"
        )
    answer = ray.remote(num_cpus=0, max_retries=0)(_answer_probe)
    # keyed by node id: several nodes may share an IP (two `ray start` on one host)
    nodes = {n["NodeID"]: n for n in ray.nodes() if n.get("Alive")}
    refs = {
        node_id: answer.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)
        ).remote(probe, token, node_id)
        for node_id in nodes
    }
    answers = {node_id: f"{probe}-{node_id}" for node_id in nodes}
    try:
        for node_id, ref in refs.items():
            reply = answers[node_id]
            node = f"{nodes[node_id]['NodeManagerAddress']} (node id {node_id[:12]})"
            try:
                problem = ray.get(ref, timeout=PROBE_TIMEOUT_S) or _read(reply, token)
            except ray.exceptions.GetTimeoutError:
                problem = f"no answer in {PROBE_TIMEOUT_S:.0f} s"
            except ray.exceptions.RayError as exc:
                problem = _first_line(exc)
            if problem:
                raise UsageError(
                    f"--checkpoint-uri {mask_url(uri)!r}: Ray node {node} does not share it with this "
                    f"driver ({problem}); give a path that every node mounts at the same "
                    "place, or an s3:// / gs:// URI"
                )
    finally:
        for path in [probe, *answers.values()]:
            _delete(path)


def _answer_probe(probe: str, token: str, node_id: str) -> str | None:
    """On a node: read the driver's probe and write the answer the driver then reads."""
    problem = _read(probe, token)
    if problem:
        return f"cannot read the driver's probe: {problem}"
    return _write(f"{probe}-{node_id}", token)


def _write(path: str, text: str) -> str | None:
    import pyarrow.fs

    try:
        fs, where = pyarrow.fs.FileSystem.from_uri(path)
        fs.create_dir(where.rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(where) as out:
            out.write(text.encode())
    except (OSError, ValueError) as exc:
        return _first_line(exc)
    return None


def _read(path: str, expected: str) -> str | None:
    import pyarrow.fs

    try:
        fs, where = pyarrow.fs.FileSystem.from_uri(path)
        with fs.open_input_stream(where) as back:
            read = back.read().decode(errors="replace")
    except (OSError, ValueError) as exc:
        return _first_line(exc)
    return None if read == expected else "what was read differs from what was written"


def _delete(path: str) -> None:
    import pyarrow.fs

    try:
        fs, where = pyarrow.fs.FileSystem.from_uri(path)
        fs.delete_file(where)
    except (OSError, ValueError):
        pass  # never written, or already gone


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
