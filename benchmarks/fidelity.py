"""Do the search's rungs rank? First rung against full fidelity for 30 draws of the space.

For each data set: the plan ``nas search --budget B`` would make on two workers (the median
draw's training step timed here, one thread, then :func:`nas.driver.plan.make_plan`, one
validation split); then 30 seeded draws of the default space (as the search draws them,
:class:`search_spaces.sampler.RandomTrial`), each trained once to the plan's full fidelity
with a report at every rung, exactly as a trial that ASHA promotes to the top. It prints
Spearman's rank correlation between the first rung's validation accuracy and the full
fidelity's, the share of first-rung results within 0.02 of chance, the optimizer steps the
first rung gives, and the seconds spent. Each (label, data set) row is appended to
``benchmarks/results/fidelity.jsonl`` and skipped when it is there already (resumable).

    python benchmarks/fidelity.py --label before                 # all three data sets
    python benchmarks/fidelity.py --label before --data digits   # one row

Data: ``digits`` (scikit-learn, 10% of the training split held out), ``fmnist8k`` (the first
8,000 Fashion-MNIST training images of ``../shared/data/fashion-mnist``, 10% of them held
out), ``acsf1`` (UCR ACSF1: its 100 training series trained on, its 100 test series ranked
on, since 10 held-out series would rank in steps of 0.1). The search itself evaluates data
this small as the mean of k folds; here one split stands for one fold.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results" / "fidelity.jsonl"
BUDGETS = {"digits": "3m", "fmnist8k": "5m", "acsf1": "3m"}
CHANCE_MARGIN = 0.02


def load(name: str) -> Any:
    """The benchmark's data set, on the CPU, 10% of the training data held out."""
    import workers
    from workers.data.dataset import make_dataset

    if name == "digits":
        return workers.load_dataset("digits")
    if name == "acsf1":  # 100 training series: all trained on, ranked on the 100 test series
        d = workers.load_dataset(str(SHARED / "ucr" / "ACSF1"), val_fraction=0.0)
        return dataclasses.replace(d, val_x=d.test_x, val_y=d.test_y)
    if name == "fmnist8k":
        full = workers.load_dataset("fashion-mnist", SHARED / "fashion-mnist", val_fraction=0.0)
        return make_dataset(
            "fashion-mnist-8k",
            full.train_x[:8000].numpy(),
            full.train_y[:8000].numpy(),
            full.test_x.numpy(),
            full.test_y.numpy(),
            val_fraction=0.1,
            seed=0,
            source="the first 8,000 Fashion-MNIST training images",
            classes=full.classes,
            mirror_invariant=full.mirror_invariant,
        )
    raise SystemExit(f"--data {name!r}: expected one of {sorted(BUDGETS)}")


def draws(data: Any, n: int, seed: int) -> list[tuple[dict, dict]]:
    """The first ``n`` valid draws of the data's default space, seeded as the search seeds."""
    import search_spaces
    from search_spaces.sampler import RandomTrial

    space = search_spaces.load_space(search_spaces.default_space_for(data.dims))
    out, i = [], 0
    while len(out) < n and i < 50 * n:
        try:
            spec, train = search_spaces.sample(
                RandomTrial(seed * 1000 + i), space, dims=data.dims, channels=data.channels,
                size=tuple(data.size), num_classes=data.num_classes,
            )  # fmt: skip
            search_spaces.count(spec, data.num_classes)
            out.append((spec, train))
        except ValueError:
            pass
        i += 1
    return out


def plan_for(
    data: Any, nets: list[tuple[dict, dict]], budget: str, workers: int, timed: float | None
) -> Any:
    """The plan a search of ``budget`` on ``workers`` workers makes: the median-MACs draw
    timed on this process's one thread (or ``timed`` seconds per sample, to compare rows
    on one timing), then :func:`make_plan`."""
    import search_spaces
    from nas.core.budget import parse_budget
    from nas.driver.plan import make_plan
    from nas.driver.plan_on_workers import largest_batch
    from workers.calibrate import seconds_per_sample

    by_macs = sorted(nets, key=lambda n: search_spaces.count(n[0], data.num_classes).macs)
    spec, train = by_macs[len(by_macs) // 2]
    timings = (
        [timed]
        if timed
        else [
            seconds_per_sample(
                spec,
                data.num_classes,
                data.channels,
                tuple(data.size),
                batch_size=int(train.get("batch_size", 64)),
                threads=1,
            )  # fmt: skip
            for _ in range(3)
        ]
    )
    space = search_spaces.load_space(search_spaces.default_space_for(data.dims))
    return make_plan(
        batch_size=largest_batch(space),
        budget_seconds=parse_budget(budget).amount,
        train_size=len(data.train_y),
        workers=workers,
        seconds_per_sample=statistics.median(timings),
        val_size=len(data.val_y),
    )


def run_one(args: tuple[Any, dict, dict, Any, int]) -> dict[str, Any]:
    """Train one draw to full fidelity; its accuracy at every rung."""
    import torch

    from workers.engine import train

    data, spec, settings, plan, seed = args
    torch.set_num_threads(1)
    reports: list[tuple[int, float]] = []

    def on_epoch(metrics: Any, state: Any) -> bool:
        reports.append((int(metrics.samples), float(metrics.val_acc)))
        return False

    t0 = time.perf_counter()
    result = train(spec, data, settings, samples=plan.max_samples, report_at=list(plan.report_at),
                   seed=seed, on_epoch=on_epoch)  # fmt: skip
    return {
        "status": result.status.value,
        # a rung's value: the first report at or past it (a report falls on a whole batch)
        "rungs": [next((a for s, a in reports if s >= r), float("nan")) for r in plan.rungs],
        "batch_size": int(settings.get("batch_size", 64)),
        "seconds": time.perf_counter() - t0,
    }


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN-free pairs only."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x == x and y == y]

    def ranks(v: list[float]) -> list[float]:
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r

    if len(pairs) < 3:
        return float("nan")
    ra, rb = ranks([p[0] for p in pairs]), ranks([p[1] for p in pairs])
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    var = math.sqrt(sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb))
    return cov / var if var else float("nan")


def bench(
    name: str, label: str, n: int, seed: int, jobs: int, timed: float | None = None
) -> dict[str, Any]:
    """One row: the plan, the rank correlation, the share at chance, the seconds."""
    t0 = time.perf_counter()
    data = load(name)
    nets = draws(data, n, seed)
    plan = plan_for(data, nets, BUDGETS[name], workers=2, timed=timed)
    print(f"{name}: {plan.describe()}", flush=True)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        runs = list(pool.map(run_one, [(data, s, t, plan, seed) for s, t in nets]))
    first = [r["rungs"][0] if r["status"] == "completed" else 1 / data.num_classes for r in runs]
    full = [r["rungs"][-1] if r["status"] == "completed" else 1 / data.num_classes for r in runs]
    chance = 1 / data.num_classes
    at_chance = sum(1 for v in first if not v == v or v <= chance + CHANCE_MARGIN)
    steps = [plan.rungs[0] / r["batch_size"] for r in runs]
    row = {
        "label": label,
        "data": name,
        "budget": BUDGETS[name],
        "plan": plan.describe(),
        "rungs": list(plan.rungs),
        "seconds_per_sample": plan.seconds_per_sample,
        "timing": "given" if timed else "measured",
        "draws": len(runs),
        "spearman_first_full": round(spearman(first, full), 3),
        "spearman_by_rung": [
            round(spearman([r["rungs"][k] for r in runs], full), 3)
            for k in range(len(plan.rungs) - 1)
        ],  # fmt: skip
        "first_at_chance": f"{at_chance}/{len(runs)}",
        "first_rung_steps": [min(steps), statistics.median(steps), max(steps)],
        "median_first": round(statistics.median(first), 4),
        "median_full": round(statistics.median(full), 4),
        "best_full": round(max(full), 4),
        "statuses": {s: sum(r["status"] == s for r in runs) for s in {r["status"] for r in runs}},
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {jobs} jobs",
    }
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", required=True, help="what this run measures (before, after-...)")
    ap.add_argument("--data", action="append", choices=sorted(BUDGETS))
    ap.add_argument("--draws", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2, help="draws trained at once, one thread each")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument(
        "--seconds-per-sample",
        action="append",
        default=[],
        metavar="DATA=S",
        help="plan from this timing instead of timing the median draw (rows compared on one "
        "timing: what changed is then only the code)",
    )
    args = ap.parse_args()
    done = set()
    if args.out.exists():
        done = {(r["label"], r["data"]) for r in map(json.loads, args.out.read_text().splitlines())}
    for name in args.data or sorted(BUDGETS):
        if (args.label, name) in done:
            print(f"{name}: row {args.label!r} is in {args.out} already; skipped")
            continue
        timed = dict(item.split("=", 1) for item in args.seconds_per_sample).get(name)
        row = bench(name, args.label, args.draws, args.seed, args.jobs,
                    float(timed) if timed else None)  # fmt: skip
        print(json.dumps(row), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    sys.exit(main())
