"""Per-trial overhead of the search spine: Ray scheduling + Optuna ask/tell + MLflow run.

Runs N trials whose trainable does no training (it reports one epoch at once), through the
real stack of ``nas search`` (NasSearcher over SQLite RDB storage, Ray Tune Tuner with ASHA,
the MLflow tracking callback over SQLite), and, in the same process, the pieces alone:

  optuna-mem   Optuna ask/tell with an in-memory study (the floor of any Optuna loop)
  optuna-rdb   the same against a SQLite RDB storage
  mlflow       create a nested run, log params + one epoch's metrics, terminate it
  full stack   everything above through Ray Tune

and prints seconds per trial and the ratio of each to the in-memory Optuna floor.

    python benchmarks/trial_overhead.py [--trials 40] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

import optuna  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)


def noop_trainable(config: dict) -> None:
    from ray import tune

    tune.report(
        {
            "val_acc": config["x"],
            "samples": 1,
            "epoch": 1,
            "status": "completed",
            "params": 1,
            "macs": 1,
        }
    )


class FixedSpace:
    """A define-by-run function with one float: sampling costs ~nothing."""

    def __call__(self, trial) -> dict:
        x = trial.suggest_float("x", 0.0, 1.0)
        for k, v in (("spec_id", "0"), ("config_key", f"{x}"), ("params", 1), ("macs", 1)):
            trial.set_user_attr(k, v)
        return {
            "spec": {"stages": []},
            "train": {"lr": 0.1},
            "spec_id": "0",
            "config_key": f"{x}",
            "cost": {"params": 1, "macs": 1},
            "rejected": None,
            "trial_number": trial.number,
        }


def bench_optuna(n: int, storage: str | None) -> float:
    study = optuna.create_study(direction="maximize", storage=storage)
    t0 = time.perf_counter()
    for _ in range(n):
        t = study.ask()
        study.tell(t, t.suggest_float("x", 0, 1))
    return (time.perf_counter() - t0) / n


def bench_mlflow(n: int, workdir: Path) -> float:
    from nas.tracking import SearchTracker

    tracker = SearchTracker(f"sqlite:///{workdir / 'mlflow-bench.db'}", "bench")
    tracker.start_search_run({"bench": True}, resume=False)
    cfg = FixedSpace()(optuna.create_study().ask())
    t0 = time.perf_counter()
    for i in range(n):
        tracker.trial_run(i, cfg)
        tracker.log_epoch(i, {"epoch": 1, "val_acc": 0.5, "val_loss": 1.0, "train_loss": 1.0})
        tracker.end_trial(i, "completed", None)
    return (time.perf_counter() - t0) / n


def bench_full(n: int, concurrency: int, workdir: Path) -> tuple[float, float]:
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from nas.budget import parse_budget
    from nas.events import SearchState
    from nas.ray_adapters import BudgetStopper, EventCallback, activate
    from nas.searcher import NasSearcher
    from nas.tracking import SearchTracker

    t_init = time.perf_counter()
    ray.init(num_cpus=concurrency, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - t_init
    state = SearchState(parse_budget(f"{n}trials"), 1, 1)
    tracker = SearchTracker(f"sqlite:///{workdir / 'mlflow.db'}", "full")
    tracker.start_search_run({"bench": True}, resume=False)
    state.subscribe(tracker.handle)
    activate("full", state)
    study = optuna.create_study(
        study_name="full",
        storage=optuna.storages.RDBStorage(f"sqlite:///{workdir / 'optuna.db'}"),
        sampler=optuna.samplers.RandomSampler(seed=0),
        direction="maximize",
    )
    searcher = NasSearcher(FixedSpace(), study=study, metrics=["val_acc"])
    tuner = tune.Tuner(
        tune.with_resources(noop_trainable, {"cpu": 1}),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            num_samples=n,
            max_concurrent_trials=concurrency,
            scheduler=ASHAScheduler(metric="val_acc", mode="max", max_t=1),
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name="full",
            storage_path=str(workdir / "ray"),
            stop=BudgetStopper("full"),
            callbacks=[EventCallback("full")],
            verbose=0,
        ),
    )
    t0 = time.perf_counter()
    tuner.fit()
    total = time.perf_counter() - t0
    activate("full", None)
    ray.shutdown()
    return total / n, init_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--concurrency", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        floor = bench_optuna(args.trials, None)
        rdb = bench_optuna(args.trials, f"sqlite:///{work / 'optuna-bench.db'}")
        mlf = bench_mlflow(args.trials, work)
        full, init_s = bench_full(args.trials, args.concurrency, work)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}; {args.trials} trials, {args.concurrency} at once"
    )
    print(f"{'what':<34}{'ms/trial':>10}{'x floor':>10}")
    for label, value in (
        ("optuna ask/tell, in memory (floor)", floor),
        ("optuna ask/tell, SQLite", rdb),
        ("mlflow nested run, SQLite", mlf),
        ("full stack (Ray Tune + both)", full),
    ):
        print(f"{label:<34}{value * 1000:>10.1f}{value / floor:>10.1f}")
    print(f"ray.init (once per search): {init_s:.2f} s")
    print(
        f"full stack per trial, wall time divided by trials at {args.concurrency} at once; "
        f"one trial's latency is about {full * args.concurrency * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
