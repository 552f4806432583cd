"""``nas search``: sample architectures with Optuna, evaluate them on Ray, track them in MLflow."""

from __future__ import annotations

import argparse
import json
import os
import sys

from nas.core.config import DEFAULT_NAME, DEFAULT_WORKDIR, SAMPLERS, SCHEDULERS
from nas.driver.plan import DEFAULT_EPOCHS, DEFAULT_GRACE_EPOCHS, MAX_FOLDS, SMALL_DATA
from workers.trial import VAL_FRACTION

EPILOG = """budgets: 90s, 30m, 2h (wall clock) | 50trials | 4gpu-h, 2cpu-h (device hours)
examples:
  nas search --budget 3m                                   # digits, the default image space
  nas search --budget 30m --dataset fashion-mnist --data-dir DATA/fashion-mnist
  nas search --budget 20trials --objective accuracy,params --sampler nsga2
  nas search --resume                                      # continue the search in ./nas-work
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        help="sample and evaluate architectures under a budget",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--budget",
        help="wall clock (90s, 30m, 2h), trials (50trials) or device hours (4gpu-h, 2cpu-h)",
    )
    p.add_argument(
        "--dataset",
        default="digits",
        help="a dataset name (digits, mnist, fashion-mnist, cifar10, ...) or a path (default: digits)",
    )
    p.add_argument("--data-dir", help="folder of the dataset's files")
    p.add_argument(
        "--space",
        help="a shipped space name or a YAML file (default: follows the data's dimensionality)",
    )
    p.add_argument(
        "--objective",
        default="accuracy",
        help="accuracy[,params|macs|latency] (several = multi-objective, Pareto front)",
    )
    p.add_argument(
        "--constraint",
        action="append",
        metavar="COST<=LIMIT",
        help="a soft limit the sampler steers towards (tpe, local, nsga2; Optuna's trial "
        "constraints): latency<=2ms, params<=100k or macs<=5M; repeat for several",
    )
    p.add_argument("--max-params", help="reject specs with more parameters (e.g. 500k, 2M)")
    p.add_argument("--max-macs", help="reject specs with more multiply-accumulates (e.g. 50M)")
    p.add_argument(
        "--max-latency-ms",
        help="reject networks slower at batch 1 (e.g. 2): measured on the worker before "
        "training, which then trains nothing",
    )
    p.add_argument("--name", default=DEFAULT_NAME, help=f"study name (default: {DEFAULT_NAME})")
    p.add_argument(
        "--workdir",
        default=DEFAULT_WORKDIR,
        help=f"state of the embedded default (default: ./{DEFAULT_WORKDIR})",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the search of this --name in --workdir"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seeds the sampler, the data split and every trial"
    )
    p.add_argument(
        "--sampler", choices=SAMPLERS, default="tpe", help="Optuna sampler (default: tpe)"
    )
    p.add_argument(
        "--scheduler", choices=SCHEDULERS, default="asha", help="early stopping (default: asha)"
    )
    p.add_argument(
        "--epochs",
        type=int,
        help="most epochs a trial trains, one report per epoch (default: planned from the "
        f"budget, the data size and a timed training step; {DEFAULT_EPOCHS} for a trial budget)",
    )
    p.add_argument(
        "--grace-epochs",
        type=int,
        help="fewest epochs before a trial can be stopped (default: planned; with --epochs, "
        f"{DEFAULT_GRACE_EPOCHS} or --epochs if smaller)",
    )
    p.add_argument(
        "--warm-start",
        default="zoo",
        metavar="none|zoo|STUDY",
        help="what a new search evaluates first: zoo (known-good networks for the data's "
        "shape, the default), none, or the best trials of another search in the same storage",
    )
    p.add_argument(
        "--folds",
        type=int,
        default=None,
        metavar="K",
        help="evaluate each trial as the mean of K stratified folds of training + validation "
        f"data, or 1 for one validation split (default: {MAX_FOLDS} folds below {SMALL_DATA:,} "
        "samples, else 1)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=VAL_FRACTION,
        help=f"share of training data held out for validation (default {VAL_FRACTION})",
    )
    p.add_argument(
        "--cpus-per-trial", type=float, default=1.0, help="CPU cores each trial holds on Ray"
    )
    p.add_argument(
        "--gpus-per-trial",
        type=float,
        default=None,
        help="fractions pack several trials on one GPU (default: 1 if CUDA, else 0)",
    )
    p.add_argument(
        "--max-concurrent", type=int, help="trials at once (default: what the resources allow)"
    )
    p.add_argument(
        "--storage",
        default=os.environ.get("NAS_STORAGE"),
        help="Optuna storage URL (default: $NAS_STORAGE, else sqlite:///WORKDIR/optuna.db)",
    )
    p.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///WORKDIR/mlflow.db)",
    )
    p.add_argument(
        "--ray-address",
        default=os.environ.get("RAY_ADDRESS"),
        help="HOST:PORT of an existing Ray cluster's head (default: $RAY_ADDRESS, else start "
        "a local Ray); the token comes from RAY_AUTH_MODE=token and RAY_AUTH_TOKEN, as on "
        "the nodes",
    )
    p.add_argument(
        "--checkpoint-uri",
        metavar="URI",
        default=os.environ.get("NAS_CHECKPOINT_URI"),
        help="where trial checkpoints live: a path every Ray node mounts at the same place, or "
        "s3:// / gs:// (default: $NAS_CHECKPOINT_URI, else WORKDIR/ray, which only this "
        "machine sees)",
    )
    p.add_argument("--json", action="store_true", help="print the leaderboard as JSON at the end")
    p.set_defaults(func=run)


def execute(args: argparse.Namespace):
    """Validate, prepare and run the search ``args`` describe: ``(SearchConfig,
    SearchOutcome)``. UsageError (nothing written) on bad input. The CLI and the Python API
    (:func:`nas.api.search`) both run a search through here."""
    cfg, space, spent, tracker = _prepare_while_ray_starts(args)

    from nas.driver.search_run import run_search

    return cfg, run_search(cfg, space, spent_before=spent, tracker=tracker)


def run(args: argparse.Namespace) -> int:
    from nas.study.records import format_table

    cfg, outcome = execute(args)
    records = outcome.records
    if args.json:
        print(json.dumps([r.to_json() for r in records], indent=2))
    else:
        title = "Pareto front (*) and leaderboard" if cfg.multi_objective else "Leaderboard"
        print(f"\n{title} of '{cfg.name}' ({len(records)} trials, {outcome.seconds:.0f}s):")
        print(format_table(records, multi=cfg.multi_objective))
    out = sys.stderr
    completed = [r for r in records if r.state == "COMPLETE"]
    if cfg.constraints and completed and not any(r.feasible for r in completed):
        out.write(
            f"nas: no completed trial met --constraint {', '.join(cfg.constraints)}; the best "
            "trial is handed over without it (loosen the limit or search longer)\n"
        )
    if outcome.status == "stopped":
        out.write(f"nas: error: {outcome.extra['stop_reason']}\n")
        return 2
    if outcome.status == "interrupted":
        out.write(
            f"\nnas: search interrupted; continue it with: nas search --resume --workdir {cfg.workdir} --name {cfg.name}\n"
        )
        return 130
    measured = [r.latency_ms_b1 for r in records if r.latency_ms_b1 is not None]
    if cfg.max_latency_ms and not completed and measured:
        out.write(
            f"nas: error: no trial was within --max-latency-ms {cfg.max_latency_ms:g} (the "
            f"fastest measured {min(measured):.3g} ms at batch 1); raise the limit\n"
        )
        return 2
    out.write(
        f"\nnext: nas ui --workdir {cfg.workdir} --name {cfg.name}   (the trials in MLflow)\n"
        f"      nas leaderboard --workdir {cfg.workdir} --name {cfg.name}\n"
        f"      nas retrain --workdir {cfg.workdir} --name {cfg.name} --best\n"
    )
    return 0


def _prepare_while_ray_starts(args: argparse.Namespace):
    """Validate the input (every UsageError happens here, before any write), starting Ray
    in the main thread as soon as only the slow loading of the dataset and space is left;
    once all is valid, the MLflow store opens in the same background thread (on a cluster,
    only once Ray is connected and every node reaches the checkpoints)."""
    import threading
    from concurrent.futures import Future, ThreadPoolExecutor

    checked = threading.Event()
    ray_started: Future[None] = Future()
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(_prepare_and_open, args, checked.set, ray_started)
        while not checked.wait(0.05) and not future.done():
            pass
        if checked.is_set():
            from nas.cluster.ray_cluster import start_ray

            try:
                start_ray(args.ray_address)
            except BaseException as exc:
                ray_started.set_exception(exc)
                raise
            ray_started.set_result(None)
        try:
            return future.result()
        except BaseException:
            if checked.is_set():
                import ray

                ray.shutdown()
            raise


def _prepare_and_open(args: argparse.Namespace, on_checked, ray_started):
    from nas.driver.prepare import prepare_search
    from nas.driver.search_run import open_tracker

    cfg, space, spent = prepare_search(args, on_checked)
    if cfg.ray_address:
        ray_started.result()  # open_tracker checks the cluster's nodes first
    return cfg, space, spent, open_tracker(cfg, space)
