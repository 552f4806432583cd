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

Two modes follow the real search's space and sampler as the study grows (issue #30):

``--mode sampler``: the driver's cost of one configuration, ``study.ask()`` + the shipped
``image`` space's define-by-run function (about 35 parameters, digits) + ``study.tell()``,
with ``nas.driver.search_run.make_sampler`` (``--sampler``), over ``--storage`` as the search
opens it (``nas``: ``nas.study.storage.rdb_storage``) or as Optuna opens a URL (``optuna``), with
ms per trial in windows of the history. No Ray, no training.

``--mode spine``: the real ``nas search`` driver (``nas.api.search``, MLflow on SQLite, the
live view, the ledger) over Ray Tune with ``--cpus`` logical CPUs, a trainable that reports
its one result at once, ``--trials`` trials; ms per trial in windows (from Optuna's
timestamps of the trials' ends), the driver process's CPU time per trial in the same
windows (what it costs, as against what it waits for), its resident memory per window and at
its peak, and the size of what Ray saved.

    python benchmarks/trial_overhead.py --mode sampler --trials 400 --storage nas
    python benchmarks/trial_overhead.py --mode spine --trials 5000 --cpus 16 \\
        --url postgresql+psycopg://postgres@127.0.0.1:5432/test
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
    from nas.tracking.tracker import SearchTracker

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

    from nas.core.budget import parse_budget
    from nas.driver.ray_adapters import BudgetStopper, EventCallback, activate
    from nas.driver.searcher import NasSearcher
    from nas.study.events import SearchState
    from nas.tracking.tracker import SearchTracker

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


def _machine(args: argparse.Namespace) -> None:
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}, optuna {optuna.__version__}; mode {args.mode}, "
        f"{args.trials} trials"
    )


def windows(n: int) -> list[tuple[int, int]]:
    """Trial windows (1-based, inclusive) printed for a history of ``n`` trials."""
    marks = [(1, 100), (1000, 1100), (4900, 5000)] if n >= 5000 else []
    if not marks:
        step = max(n // 4, 1)
        marks = [(max(1, k - step // 2), k) for k in range(step, n + 1, step)]
        marks[0] = (1, min(step, 100))
    return [(a, min(b, n)) for a, b in marks if a <= n]


def _digits_search(url: str, sampler: str, seed: int = 0):
    """(study, define-by-run) of a search of digits on the shipped image space."""
    import search_spaces
    from nas.core.budget import parse_budget
    from nas.core.config import DataInfo, SearchConfig
    from nas.driver.define_by_run import DefineByRun
    from nas.driver.plan import Plan
    from nas.driver.search_run import make_sampler

    data = DataInfo("digits", None, 2, 1, (8, 8), 10, 1294, 144, 160)
    cfg = SearchConfig(parse_budget("100trials"), "digits", None, "image", storage=url)
    plan = Plan(1000, 100, (100, 300, 1000), 3, (100, 300, 1000), (27, 9, 3), 1294, None,
                "--epochs", folds=5)  # fmt: skip
    define_by_run = DefineByRun(cfg, search_spaces.load_space("image"), data, plan)
    return make_sampler(sampler, seed), define_by_run


def bench_sampler(
    n: int, storage_kind: str, sampler_name: str, workdir: Path, url: str | None = None
) -> list[float]:
    """ms of ask + define-by-run + tell for each of ``n`` trials (SQLite unless ``url``)."""
    import random
    import uuid

    from nas.study.storage import rdb_storage

    url = url or f"sqlite:///{workdir / f'sampler-{storage_kind}.db'}"
    sampler, define_by_run = _digits_search(url, sampler_name)
    storage = {"nas": lambda: rdb_storage(url), "optuna": lambda: url, "memory": lambda: None}
    study = optuna.create_study(
        study_name=f"bench-{uuid.uuid4().hex[:8]}", storage=storage[storage_kind](),
        sampler=sampler,
        direction="maximize",
    )  # fmt: skip
    rng = random.Random(0)
    costs = []
    for _ in range(n):
        t0 = time.perf_counter()
        trial = study.ask()
        config = define_by_run(trial)
        if config["rejected"]:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, rng.random())
        costs.append((time.perf_counter() - t0) * 1000)
    return costs


def instant_trial(config: dict, data=None) -> None:
    """A stand-in for ``workers.trainable.train_trial``: one final report at full fidelity,
    at once, with an accuracy drawn from the configuration (so the sampler has a signal)."""
    from ray import tune

    cost = config.get("cost") or {}
    acc = int(config["config_key"][:8], 16) % 10_000 / 10_000
    tune.report({"samples": int(config["max_samples"]), "epoch": 1, "val_acc": acc,
                 "status": "completed", "params": int(cost.get("params", 0)),
                 "macs": int(cost.get("macs", 0)), "latency_ms_b1": 0.1})  # fmt: skip


def bench_spine(n: int, cpus: int, url: str | None, workdir: Path) -> None:
    """The real driver over Ray Tune with :func:`instant_trial`; prints its windows."""
    import threading
    import uuid

    import psutil
    import ray

    import nas
    import nas.driver.search_run

    nas.driver.search_run.train_trial = instant_trial
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    rss: list[tuple[float, float, float]] = []  # (time, resident MiB, CPU seconds so far)
    done = threading.Event()

    def sample_memory() -> None:
        me = psutil.Process()
        while not done.wait(1.0):
            cpu = me.cpu_times()
            rss.append((time.time(), me.memory_info().rss / 2**20, cpu.user + cpu.system))

    threading.Thread(target=sample_memory, daemon=True).start()
    name = f"spine-{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    nas.search("digits", budget=f"{n}trials", workdir=workdir, name=name, storage=url,
               epochs=1, warm_start="none", max_concurrent=cpus)  # fmt: skip
    wall = time.perf_counter() - t0
    done.set()
    study = optuna.load_study(study_name=name, storage=url or f"sqlite:///{workdir / 'optuna.db'}")
    ends = sorted(t.datetime_complete.timestamp() for t in study.trials if t.datetime_complete)
    print(f"{len(ends)} trials ended ({n} evaluated asked) in {wall:.0f} s with {cpus} at once")
    for a, b in windows(len(ends)):
        span = ends[b - 1] - ends[a - 1]
        inside = [(m, c) for t, m, c in rss if ends[a - 1] <= t <= ends[b - 1]]
        mem = max((m for m, _ in inside), default=float("nan"))
        cpu = inside[-1][1] - inside[0][1] if len(inside) > 1 else float("nan")
        print(f"trials {a}-{b}: {1000 * span / max(b - a, 1):.1f} ms per trial, driver CPU "
              f"{1000 * cpu / max(b - a, 1):.1f} ms per trial, driver {mem:.0f} MiB")  # fmt: skip
    print(f"driver peak resident memory: {max(m for _, m, _ in rss):.0f} MiB")
    saved = sum(p.stat().st_size for p in (workdir / "ray" / name).rglob("*") if p.is_file())
    print(f"what Ray saved for the experiment: {saved / 2**20:.1f} MiB")
    ray.shutdown()


def print_windows(label: str, costs: list[float]) -> None:
    """Mean ms per trial in each window."""
    cells = []
    for a, b in windows(len(costs)):
        part = costs[a - 1 : b]
        cells.append(f"{a}-{b}: {sum(part) / len(part):.1f}")
    print(f"{label:<28}" + " | ".join(cells))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("pieces", "sampler", "spine"), default="pieces")
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--storage", default="nas", help="sampler mode: nas, optuna or memory")
    ap.add_argument("--sampler", default="tpe", help="sampler mode: a --sampler of nas search")
    ap.add_argument("--cpus", type=int, default=16, help="spine mode: Ray's logical CPUs")
    ap.add_argument("--url", help="spine and sampler modes: Optuna storage URL (default: SQLite)")
    args = ap.parse_args()
    if args.mode == "spine":
        _machine(args)
        with tempfile.TemporaryDirectory() as tmp:
            bench_spine(args.trials, args.cpus, args.url, Path(tmp))
        return
    if args.mode == "sampler":
        _machine(args)
        with tempfile.TemporaryDirectory() as tmp:
            costs = bench_sampler(args.trials, args.storage, args.sampler, Path(tmp), args.url)
        print_windows(f"{args.sampler} over {args.storage}", costs)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        floor = bench_optuna(args.trials, None)
        rdb = bench_optuna(args.trials, f"sqlite:///{work / 'optuna-bench.db'}")
        mlf = bench_mlflow(args.trials, work)
        full, init_s = bench_full(args.trials, args.concurrency, work)
    _machine(args)
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
