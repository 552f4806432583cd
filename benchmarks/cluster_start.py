"""How long a search on a fresh multi-node Ray cluster takes to reach its first trial.

Builds the cluster of ``tests/test_cluster.py`` (a head and a worker node, each in its own
network namespace, the worker unable to see the checkout, the data and the driver's
workdir; a PostgreSQL server and an MLflow server of its own), then runs ``nas search`` on
the head node and reads from MLflow when each node's first trial started and first reported.
The same search runs on a local Ray of this machine in the same command, as the baseline.

    python benchmarks/cluster_start.py [--repeats 2]

Needs root (network namespaces) and PostgreSQL's binaries.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from mlflow.tracking import MlflowClient  # noqa: E402
from servers import namespaces_unavailable, two_node_cluster  # noqa: E402

NAS = [sys.executable, "-m", "nas", "search", "--budget", "4trials", "--epochs", "1"]
DATA = REPO.parent / "shared" / "data" / "ucr" / "GunPoint"


def first_times(tracking_uri: str, name: str, t0: float) -> dict[str, tuple[float, float]]:
    """node -> (seconds from t0 to its first trial's start, to that trial's first report)."""
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`nas.role` = 'trial'")
    out: dict[str, tuple[float, float]] = {}
    for run in sorted(runs, key=lambda r: r.info.start_time):
        node = run.data.tags.get("nas.node")
        if node is None or node in out:
            continue
        history = client.get_metric_history(run.info.run_id, "val_acc")
        first_report = min(m.timestamp for m in history) / 1000 if history else float("nan")
        out[node] = (run.info.start_time / 1000 - t0, first_report - t0)
    return out


def on_cluster(repeat: int) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="nas-bench-driver-"))
    try:
        with two_node_cluster(DATA, workdir) as (c, pg, mlflow):
            name = f"bench{repeat}"
            argv = [*NAS, "--dataset", str(DATA), "--workdir", str(workdir), "--name", name,
                    "--storage", pg.url, "--tracking-uri", mlflow.url,
                    "--ray-address", c.ray_address,
                    "--checkpoint-uri", str(c.root / "checkpoints")]  # fmt: skip
            t0 = time.time()
            done = c.run("head", argv, env=c.env, capture_output=True, text=True, timeout=900)
            total = time.time() - t0
            if done.returncode != 0:
                raise RuntimeError(done.stderr[-2000:])
            firsts = first_times(mlflow.url, name, t0)
            return {
                "ray_start_head_s": c.started_in["head"],
                "ray_start_worker_s": c.started_in["w1"],
                "head_first_start_s": firsts[c.ip("head")][0],
                "head_first_report_s": firsts[c.ip("head")][1],
                "worker_first_start_s": firsts[c.ip("w1")][0],
                "worker_first_report_s": firsts[c.ip("w1")][1],
                "search_s": total,
            }
    finally:
        subprocess.run(["rm", "-rf", str(workdir)])


def local(repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="nas-bench-local-") as workdir:
        argv = [*NAS, "--dataset", str(DATA), "--workdir", workdir]
        t0 = time.time()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
        total = time.time() - t0
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-2000:])
        (start, report), *_ = first_times(f"sqlite:///{workdir}/mlflow.db", "search", t0).values()
        return {
            "local_first_start_s": start,
            "local_first_report_s": report,
            "local_search_s": total,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    reason = namespaces_unavailable()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    rows: list[dict[str, float]] = []
    for i in range(args.repeats):
        rows.append(on_cluster(i) | local(i))
        print({k: round(v, 1) for k, v in rows[-1].items()}, flush=True)
    print("\n| measure | " + " | ".join(f"run {i + 1}" for i in range(len(rows))) + " | median |")
    print("| --- |" + " ---: |" * (len(rows) + 1))
    for key in rows[0]:
        values = [r[key] for r in rows]
        cells = " | ".join(f"{v:.1f}" for v in values)
        print(f"| {key} | {cells} | {statistics.median(values):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
