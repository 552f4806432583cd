"""The search against what a user would do instead, at the same wall-clock budget.

    python benchmarks/peers.py --dataset digits --budget 3m --seed 0 --arm nas
    python benchmarks/peers.py --table          # writes the table into benchmarks/README.md
    python benchmarks/peers.py --quick          # every arm on digits, 30 s, seed 0 (CI)

Arms (one per run; each appends one JSON line to ``--results``):

- ``nas``: ``nas search`` with its defaults, then ``nas retrain --best --epochs E``, tested.
- ``random``: the same with ``--sampler random --warm-start none`` over the same space and
  plan.
- ``tune``: a hand-written Ray Tune + ``OptunaSearch`` + ASHA loop over a plain CNN
  (conv / BN / ReLU / max-pool stacks; width, depth, kernel, lr, optimizer and batch size as
  its space), written here from Ray's documentation without the project's model, training or
  search code; its winner is retrained for E epochs on training + validation data and tested.
- ``reference``: no search: the reference spec (``benchmarks/specs``) trained on training +
  validation data for as long as the ``nas`` arm of the same dataset and seed spent searching
  and retraining together (the budget plus the retrain when that arm has not run), tested.

Every arm reads the data through the project's loader (``workers.load_dataset``), so all of
them see the same training, validation and test splits; nothing else is shared with the
``tune`` arm. Reported: test accuracy, configurations evaluated (trials that reported at
least once), wall time, the winner's parameters and MACs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared" / "data"
RESULTS = HERE / "results" / "peers.jsonl"
README = HERE / "README.md"
ARMS = ("nas", "random", "tune", "reference", "minirocket")
QUICK_ARMS = ("nas", "random", "tune", "reference")  # minirocket: series only, a peer's package
ARM_TITLES = {
    "nas": "(a) nas search (defaults)",
    "random": "(b) nas search --sampler random",
    "tune": "(c) hand-written Ray Tune + OptunaSearch + ASHA, plain CNN",
    "reference": "(d) no search: reference spec, same total time",
    "minirocket": "(e) MiniRocket + ridge (sktime), same splits",
}
#: name -> (what `--dataset` gets, default budget, retrain epochs). The series sets have
#: 40-50 training series, one or two optimizer steps an epoch: 500 epochs are the floor of
#: ``nas retrain``'s default (500 steps); runs before commit 12e25de used 100 (the table
#: shows each row's epochs).
DATASETS = {
    "digits": ("digits", "3m", 30),
    "fashion-mnist": (str(SHARED / "fashion-mnist"), "10m", 10),
    "GunPoint": (str(SHARED / "ucr" / "GunPoint"), "3m", 500),
    "BasicMotions": (str(SHARED / "ucr" / "BasicMotions"), "3m", 500),
    "ACSF1": (str(SHARED / "ucr" / "ACSF1"), "3m", 500),
}
BEGIN, END = "<!-- peers:begin -->", "<!-- peers:end -->"
PROBE_SAMPLES = 32768  # the reference arm's timing probes train at least this many samples


# ----------------------------------------------------------------------------- helpers


def parse_budget(text: str) -> float:
    """``90s`` / ``3m`` / ``1h`` -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    text = text.strip().lower()
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def _run(cmd: list[str], cwd: Path, log: Path) -> str:
    """Run a command, keep its stderr in ``log``, return its stdout; fail loudly."""
    with open(log, "a") as err:
        proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=err, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}; see {log}")
    return proc.stdout


def _json_tail(text: str) -> Any:
    """The JSON document at the end of a command's stdout."""
    start = min(i for i in (text.find("{"), text.find("[")) if i >= 0)
    return json.loads(text[start:])


def _machine() -> str:
    import torch

    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}"
    )


# ----------------------------------------------------------------------------- arms a, b, d


def arm_nas(
    dataset: str,
    budget: str,
    seed: int,
    epochs: int,
    work: Path,
    sampler: str,
    extra: list[str] | None = None,
    total_s: float | None = None,
) -> dict:
    """``nas search`` (+ ``--sampler random`` for arm b), ``nas retrain --best``, tested.

    A search that hands over nothing (``nas retrain --best`` refuses) is a result too: the
    row carries ``test_acc`` None and the refusal as ``error``. With ``total_s`` the retrain
    gets what is left of that total (``nas retrain --budget``) instead of ``epochs``.
    """
    log = work / "log.txt"
    start = time.monotonic()
    search = ["nas", "search", "--dataset", dataset, "--budget", budget, "--seed", str(seed)]
    search += ["--workdir", str(work)]
    if sampler != "tpe":
        search += ["--sampler", sampler, "--warm-start", "none"]
    _run(search + list(extra or []), work, log)
    searched = time.monotonic() - start
    board = _json_tail(_run(["nas", "leaderboard", "--workdir", str(work), "--json"], work, log))
    evaluated = sum(1 for row in board if (row.get("samples") or 0) > 0)
    full = sum(1 for row in board if row.get("status") == "completed")
    retrain = ["nas", "retrain", "--workdir", str(work), "--best"]
    if total_s is not None:
        left = max(10.0, total_s - (time.monotonic() - start) - RETRAIN_STARTUP_S)
        retrain += ["--budget", f"{int(left)}s"]
    else:
        retrain += ["--epochs", str(epochs)]
    try:
        result = _json_tail(_run([*retrain, "--json"], work, log))
    except RuntimeError:
        refusal = [line for line in log.read_text().splitlines() if line.startswith("nas: error")]
        return {
            "test_acc": None,
            "error": refusal[-1] if refusal else "nas retrain failed",
            "evaluated": evaluated,
            "full_fidelity": full,
            "plan": _plan(work),
            "search_s": searched,
            "wall_s": time.monotonic() - start,
            "params": None,
            "macs": None,
        }
    return {
        "test_acc": result["test_acc"],
        "evaluated": evaluated,
        "full_fidelity": full,
        "plan": _plan(work),
        "search_s": searched,
        "wall_s": time.monotonic() - start,
        "params": result.get("params") or (result.get("cost") or {}).get("params"),
        "macs": result.get("macs") or (result.get("cost") or {}).get("macs"),
    }


#: What ``nas retrain`` spends before and after training (start-up, data, test, MLflow).
RETRAIN_STARTUP_S = 15.0


def _plan(work: Path) -> dict | None:
    """The plan the search made (search.json), for the record."""
    path = work / "search" / "search.json"
    return json.loads(path.read_text()).get("plan") if path.is_file() else None


def arm_minirocket(dataset: str, seed: int) -> dict:
    """(e) What a user of 1-D data picks first: MiniRocket features (Dempster et al. 2021,
    sktime's ``MiniRocketMultivariate``) and a ridge classifier with cross-validated
    regularisation, fitted on training + validation, tested on the same test split. sktime
    is the benchmark's, not the project's: install it beside the project (a virtual
    environment with the system's packages) to run this arm."""
    import numpy as np
    from sklearn.linear_model import RidgeClassifierCV
    from sktime.transformations.panel.rocket import MiniRocketMultivariate

    import workers

    data = workers.load_dataset(dataset, val_fraction=0.1, seed=seed)
    if data.dims != 1:
        raise SystemExit(f"--arm minirocket: {dataset} is not a series data set")
    start = time.monotonic()
    x = np.concatenate([data.train_x.numpy(), data.val_x.numpy()]).astype(np.float64)
    y = np.concatenate([data.train_y.numpy(), data.val_y.numpy()])
    rocket = MiniRocketMultivariate(random_state=seed)
    features = rocket.fit_transform(x)
    ridge = RidgeClassifierCV(alphas=np.logspace(-3, 3, 10)).fit(features, y)
    test = rocket.transform(data.test_x.numpy().astype(np.float64))
    acc = float(ridge.score(test, data.test_y.numpy()))
    return {"test_acc": acc, "evaluated": 1, "full_fidelity": None,
            "wall_s": time.monotonic() - start, "params": None, "macs": None}  # fmt: skip


def reference_spec(data: Any) -> dict:
    """The no-search baseline for the data's shape: the Fashion-MNIST reference CNN for
    images, a fully convolutional network (Wang et al. 2017) for series."""
    import yaml

    name = "fashion_mnist_reference.yaml" if data.dims == 2 else "fcn_1d_reference.yaml"
    spec = yaml.safe_load((HERE / "specs" / name).read_text())
    spec["input"] = {"dims": data.dims, "channels": data.channels, "size": list(data.size)}
    return spec


def arm_reference(
    dataset: str,
    budget: str,
    seed: int,
    epochs: int,
    work: Path,
    results: Path,
    target_s: float | None = None,
):
    """The reference spec on train + val for the time the ``nas`` arm took in all (its last
    row for this dataset and seed), or for ``target_s`` seconds when given."""
    import yaml

    import workers

    data = workers.load_dataset(dataset, val_fraction=0.1, seed=seed)
    spec = reference_spec(data)
    path = work / "reference.yaml"
    path.write_text(yaml.safe_dump(spec))
    same = [
        r
        for r in _load(results)
        if r["arm"] == "nas" and r["dataset"] == _name_of(dataset) and r["seed"] == seed
    ]
    target = target_s or (same[-1]["wall_s"] if same else None)
    log = work / "log.txt"
    base = ["nas", "train", str(path), "--dataset", dataset, "--val-fraction", "0"]
    base += ["--seed", str(seed), "--json"]
    start = time.monotonic()
    # Two probes, k and 3k epochs of at least PROBE_SAMPLES samples: an epoch's cost is their
    # difference over 2k epochs. One probe's time per epoch carried the model build and the
    # first steps' warm-up (a 43 s run against a 216 s target on digits), and one epoch of
    # 40 series said nothing at all (17 s, or 3,358 epochs, against ~210 s targets).
    samples = len(data.train_y) + len(data.val_y)
    k = max(1, math.ceil(PROBE_SAMPLES / samples))
    short = _json_tail(_run([*base, "--epochs", str(k)], work, log))
    long = _json_tail(_run([*base, "--epochs", str(3 * k)], work, log))
    per_epoch = max((long["seconds"] - short["seconds"]) / (2 * k), 1e-4)
    elapsed = time.monotonic() - start
    startup = (elapsed - short["seconds"] - long["seconds"]) / 2  # a process: imports, data
    warmup = max(0.0, short["seconds"] - k * per_epoch)  # building the model, first steps
    if target is None:  # the nas arm has not run: its budget plus a retrain of the same length
        target = parse_budget(budget) + epochs * per_epoch
    remaining = target - elapsed - startup - warmup
    n = max(1, math.floor(remaining / per_epoch))
    result = _json_tail(_run([*base, "--epochs", str(n)], work, log))
    return {
        "test_acc": result["test_acc"],
        "evaluated": 0,
        "wall_s": time.monotonic() - start,
        "epochs": n,
        "target_s": target,
        "params": result.get("params"),
        "macs": None,
    }


# ----------------------------------------------------------------------------- arm c


def _plain_cnn(dims: int, channels: int, classes: int, width: int, depth: int, kernel: int):
    """conv-BN-ReLU stacks with a max pool after each (while the input allows), GAP, linear."""
    from torch import nn

    conv = (nn.Conv1d, nn.Conv2d)[dims - 1]
    norm = (nn.BatchNorm1d, nn.BatchNorm2d)[dims - 1]
    pool = (nn.MaxPool1d, nn.MaxPool2d)[dims - 1]
    gap = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)[dims - 1]
    layers: list[nn.Module] = []
    c = channels
    for i in range(depth):
        out = width * 2 ** min(i, 2)
        layers += [conv(c, out, kernel, padding=kernel // 2, bias=False), norm(out), nn.ReLU()]
        layers += [pool(2, ceil_mode=True)]
        c = out
    return nn.Sequential(*layers, gap(1), nn.Flatten(), nn.Linear(c, classes))


def _tensors(data: Any, split: str):

    x = getattr(data, f"{split}_x").float()
    view = (1, -1) + (1,) * data.dims
    x = (x - data.mean.float().view(view)) / data.std.float().view(view)
    return x, getattr(data, f"{split}_y")


def _fit(config: dict, x, y, epochs: int, report=None, val=None, seed: int = 0):
    """A plain training loop: shuffled mini-batches, cosine learning rate, cross-entropy."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = _plain_cnn(
        config["dims"], x.shape[1], config["classes"], config["width"], config["depth"],
        config["kernel"],
    )  # fmt: skip
    opt_cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[config["optimizer"]]
    extra = {"momentum": 0.9, "nesterov": True} if config["optimizer"] == "sgd" else {}
    opt = opt_cls(model.parameters(), lr=config["lr"], weight_decay=5e-4, **extra)
    steps = epochs * math.ceil(len(x) / config["batch_size"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config["lr"], total_steps=max(1, steps))
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train()
        for idx in torch.randperm(len(x)).split(config["batch_size"]):
            if len(idx) < 2:
                continue
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
            sched.step()
        if report is not None:
            report({"val_acc": _accuracy(model, *val), "epoch": epoch + 1})
    return model


def _accuracy(model, x, y) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(b).argmax(1) for b in x.split(512)])
    return float((pred == y).float().mean())


def arm_tune(dataset: str, budget: str, seed: int, epochs: int, work: Path) -> dict:
    """Ray Tune's Tuner + OptunaSearch (TPE) + ASHA over the plain CNN, as Ray's docs show."""
    import ray
    import torch
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    import workers

    start = time.monotonic()
    data = workers.load_dataset(dataset, val_fraction=0.1, seed=seed)
    train, val = _tensors(data, "train"), _tensors(data, "val")
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        ref = ray.put((train, val))

        def trainable(config: dict) -> None:
            torch.set_num_threads(1)
            (tx, ty), v = ray.get(ref)
            _fit(config, tx, ty, 12, report=tune.report, val=v, seed=seed)

        depth_max = 4 if min(data.size) >= 16 else 3
        space = {
            "width": tune.choice([16, 32, 48, 64]),
            "depth": tune.randint(1, depth_max + 1),
            "kernel": tune.choice([3, 5] if data.dims == 2 else [3, 5, 7, 9]),
            "lr": tune.loguniform(1e-3, 1e-1),
            "optimizer": tune.choice(["sgd", "adam"]),
            "batch_size": tune.choice([32, 64, 128]),
            "dims": data.dims,
            "classes": data.num_classes,
        }
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space=space,
            tune_config=tune.TuneConfig(
                metric="val_acc",
                mode="max",
                search_alg=OptunaSearch(seed=seed),
                scheduler=ASHAScheduler(max_t=12, grace_period=1, reduction_factor=3),
                num_samples=-1,
                time_budget_s=parse_budget(budget),
            ),
            run_config=tune.RunConfig(storage_path=str(work / "ray"), verbose=0),
        )
        results = tuner.fit()
        reported = [r for r in results if r.metrics and "val_acc" in r.metrics]
        best = max(reported, key=lambda r: r.metrics["val_acc"]) if reported else None
    finally:
        ray.shutdown()
    if not reported:  # a result all the same: this loop handed over no model
        return {
            "test_acc": None,
            "error": f"tune arm: no trial reported within the budget {budget}",
            "evaluated": 0,
            "wall_s": time.monotonic() - start,
            "params": None,
            "macs": None,
        }
    torch.set_num_threads(os.cpu_count() or 1)
    tx = torch.cat([train[0], val[0]])
    ty = torch.cat([train[1], val[1]])
    config = {k: best.config[k] for k in space}
    model = _fit(config, tx, ty, epochs, seed=seed)
    test_acc = _accuracy(model, *_tensors(data, "test"))
    return {
        "test_acc": test_acc,
        "evaluated": len(reported),
        "wall_s": time.monotonic() - start,
        "params": sum(p.numel() for p in model.parameters()),
        "macs": None,
        "winner": {k: config[k] for k in ("width", "depth", "kernel", "lr", "optimizer")},
    }


# ----------------------------------------------------------------------------- results


def _name_of(dataset: str) -> str:
    for name, (arg, _, _) in DATASETS.items():
        if dataset in (name, arg):
            return name
    return Path(dataset).name


def _load(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _seconds(duration: str) -> float:
    from nas.core.budget import parse_budget

    return parse_budget(duration).amount


def run_arm(args: argparse.Namespace) -> dict:
    name = _name_of(args.dataset)
    dataset, default_budget, default_epochs = DATASETS.get(name, (args.dataset, "3m", 20))
    budget = args.budget or default_budget
    epochs = args.retrain_epochs or default_epochs
    work = Path(tempfile.mkdtemp(prefix=f"peers-{name}-{args.arm}-"))
    total_s = _seconds(args.total) if args.total else None
    try:
        if args.arm in ("nas", "random"):
            sampler = "tpe" if args.arm == "nas" else "random"
            row = arm_nas(dataset, budget, args.seed, epochs, work, sampler, args.nas_args,
                          total_s)  # fmt: skip
        elif args.arm == "tune":
            row = arm_tune(dataset, budget, args.seed, epochs, work)
        elif args.arm == "minirocket":
            row = arm_minirocket(dataset, args.seed)
        else:
            row = arm_reference(
                dataset,
                budget,
                args.seed,
                epochs,
                work,
                Path(args.results),
                args.target_s or total_s,
            )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    row.update(
        arm=args.arm,
        dataset=name,
        budget=budget,
        seed=args.seed,
        retrain_epochs=epochs,
        **({"total": args.total} if args.total else {}),
        **({"nas_args": args.nas_args} if args.nas_args and args.arm in SEARCH_ARMS else {}),
        date=date.today().isoformat(),
        machine=_machine(),
        commit=_commit(),
    )
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
    return row


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True)
    return out.stdout.decode().strip() or "unknown"


def _fmt(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    if not values:
        return "–"
    mean = statistics.fmean(values) * scale
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"


def table(rows: list[dict]) -> str:
    """Markdown: one block per dataset, one line per arm, mean ± std over seeds; verdicts of
    (a) (its group with the most seeds) against each other arm (a tie when the means are
    within one pooled std)."""
    out: list[str] = []
    for name in [n for n in DATASETS if any(r["dataset"] == n for r in rows)]:
        mine = [r for r in rows if r["dataset"] == name]
        budget = mine[-1]["budget"]
        out += [
            f"**{name}**, budget {budget}",
            "",
            "| arm | seeds | retrain epochs | test accuracy % | configs evaluated | "
            "full fidelity | wall s | winner params | winner MACs | (a) vs this |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        groups = _groups(mine)
        # each arm's group with the most seeds (the last of those on a tie): the most
        # complete measurement of the search as it stands
        latest = {}
        for arm, _, rows_ in groups:
            if len(rows_) >= len(latest.get(arm, [])):
                latest[arm] = rows_
        for arm, commit, got in groups:
            if not got:
                out.append(f"| {ARM_TITLES[arm]} | 0 | | not run yet | | | | | | |")
                continue
            at = f" ({commit})" if commit and commit.startswith("T=") else f" @ {commit}"
            title = ARM_TITLES[arm] + (at if commit else "")
            accs = [r["test_acc"] for r in got if r["test_acc"] is not None]
            failed = [r for r in got if r["test_acc"] is None]
            params = [r["params"] for r in got if r.get("params")]
            macs = [r["macs"] for r in got if r.get("macs")]
            verdict = _verdict(latest["nas"], got) if arm != "nas" else ""
            epochs = ",".join(sorted({str(r["retrain_epochs"]) for r in got}))
            full = [r["full_fidelity"] for r in got if r.get("full_fidelity") is not None]
            out.append(
                f"| {title} | {','.join(str(r['seed']) for r in got)} | {epochs} | {_fmt(accs)}"
                + (f" ({len(failed)} handed over no model)" if failed else "")
                + " "
                f"| {_fmt([r['evaluated'] for r in got], 1, 1)} "
                f"| {_fmt(full, 1, 1) if full else '–'} "
                f"| {_fmt([r['wall_s'] for r in got], 1, 0)} "
                f"| {_fmt(params, 1, 0) if params else '–'} "
                f"| {_fmt(macs, 1, 0) if macs else '–'} | {verdict} |"
            )
        out.append("")
    return "\n".join(out)


#: Arms that run this project's search: their rows are grouped by the commit that ran them,
#: so the table shows the search before and after a change side by side.
SEARCH_ARMS = ("nas", "random")


def _groups(rows: list[dict]) -> list[tuple[str, str | None, list[dict]]]:
    """(arm, commit or None, rows) in table order: every commit of a search arm in the order
    it first appears in the results; the other arms pooled over commits but not over retrain
    lengths (the series sets' retrain went from 100 to 500 epochs at 12e25de)."""
    out: list[tuple[str, str | None, list[dict]]] = []
    for arm in ARMS:
        got = [r for r in rows if r["arm"] == arm]
        if arm == "minirocket" and not got:
            continue  # a series-only peer: no line where it was not run
        if arm not in SEARCH_ARMS:
            lengths = list(dict.fromkeys(_length(r) for r in got)) or [None]
            out += [(arm, _length_label(e), [r for r in got if _length(r) == e]) for e in lengths]
            continue
        labels = list(dict.fromkeys(_label(r) for r in got)) or [None]
        out += [(arm, c, [r for r in got if _label(r) == c]) for c in labels]
    return out


def _label(row: dict) -> str:
    """A search arm's group: the commit, the extra ``nas search`` options if any, and the
    equal total time ``T=`` when the row had one."""
    total = [f"T={row['total']}"] if row.get("total") else []
    return " ".join([row["commit"], *row.get("nas_args", []), *total])


def _length(row: dict) -> tuple:
    """A non-search arm's group: its retrain length, or the equal total time."""
    return (row.get("retrain_epochs"), row.get("total"))


def _length_label(length: tuple | None) -> str | None:
    return f"T={length[1]}" if length and length[1] else None


def _verdict(a: list[dict], other: list[dict]) -> str:
    if not a:
        return ""
    # a run that handed over no model counts as chance level: it is what the user is left with
    xa = [r["test_acc"] or 0.0 for r in a]
    xb = [r["test_acc"] or 0.0 for r in other]
    diff = statistics.fmean(xa) - statistics.fmean(xb)
    if len(xa) > 1 and len(xb) > 1:
        pooled = math.sqrt((statistics.variance(xa) + statistics.variance(xb)) / 2)
        if abs(diff) <= pooled:
            return f"tie ({diff * 100:+.2f})"
    elif len(xa) == 1 or len(xb) == 1:
        return (
            f"{'wins' if diff > 0 else 'loses' if diff < 0 else 'tie'} ({diff * 100:+.2f}, 1 seed)"
        )
    return f"{'wins' if diff > 0 else 'loses'} ({diff * 100:+.2f})"


def write_table(results: Path, readme: Path = README) -> None:
    rows = _load(results)
    machine = rows[-1]["machine"] if rows else _machine()
    days = sorted({r["date"] for r in rows})
    body = (
        f"{BEGIN}\nMachine: {machine}. Dates: {', '.join(days) or '–'}. Commits: "
        f"{', '.join(sorted({r['commit'] for r in rows}))}.\n\n{table(rows)}{END}"
    )
    text = readme.read_text() if readme.is_file() else ""
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + body + text[text.index(END) + len(END) :]
    else:
        text += f"\n## Peers: the search against what users would do instead\n\n{body}\n"
    readme.write_text(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", default="digits", help=f"one of {list(DATASETS)} or a path")
    p.add_argument("--budget", default=None, help="wall clock, e.g. 3m (default per dataset)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--arm", choices=ARMS, help="which arm to run")
    p.add_argument("--retrain-epochs", type=int, default=None, help="default per dataset")
    p.add_argument(
        "--results",
        default=None,
        help=f"JSON-lines file (default {RESULTS}; with --quick a temporary file: a 30-second "
        "row is no result)",
    )
    p.add_argument("--table", action="store_true", help="write the table into README.md")
    p.add_argument("--quick", action="store_true", help="every arm on digits, 30 s, seed 0")
    p.add_argument("--keep", action="store_true", help="keep each arm's work folder")
    p.add_argument(
        "--total",
        metavar="DURATION",
        help="equal total time T for every arm: the search arms retrain for what is left of T "
        "after searching (nas retrain --budget), the reference trains for T (e.g. 6m)",
    )
    p.add_argument(
        "--target-s",
        type=float,
        default=None,
        help="reference arm: train for this many seconds in all (default: the nas arm's "
        "last wall time for the dataset and seed)",
    )
    p.add_argument(
        "--nas-arg",
        dest="nas_args",
        action="append",
        default=[],
        metavar="OPTION",
        help="an extra `nas search` option for the nas and random arms, e.g. --nas-arg=--folds=5 "
        "(repeatable; recorded in the row and shown in its table group)",
    )
    args = p.parse_args(argv)
    if args.results is None:
        quick = Path(tempfile.gettempdir()) / f"peers-quick-{os.getpid()}.jsonl"
        args.results = str(quick if args.quick else RESULTS)
    if args.table:
        write_table(Path(args.results))
        return 0
    if args.quick:
        args.dataset, args.budget, args.seed, args.retrain_epochs = "digits", "30s", 0, 2
        for arm in QUICK_ARMS:
            args.arm = arm
            print(json.dumps(run_arm(args)))
        print(f"quick rows written to {args.results}", file=sys.stderr)
        return 0
    if not args.arm:
        p.error("--arm is required (or --table / --quick)")
    print(json.dumps(run_arm(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
