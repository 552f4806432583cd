"""What a multi-objective search's first rung keeps: the trials promoted past it against
those it stopped, by size, and the front the search ends with (issue 29).

Runs ``nas search --objective accuracy,params`` (extra arguments go to it) in a fresh work
folder with the ``nas`` of the tree it is run from (``PYTHONPATH``), then reads the study:

    python benchmarks/pareto_rungs.py --budget 4m --seed 0 --epochs 9 --grace-epochs 1

(rungs at 1, 3 and 9 epochs: a short planned budget gives a multi-objective search one rung)

prints, for the trials that reached the first rung, the median parameter count of those
promoted past it and of those stopped there, the front's size, and its hypervolume in
(validation accuracy, log10 parameters), reference point (0, 7) (no accuracy, 10 M
parameters): larger is better.
"""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna


def hypervolume(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by ``points`` (accuracy up, log10 params down) above ``ref``."""
    kept = sorted({(a, p) for a, p in points if a > ref[0] and p < ref[1]}, key=lambda q: q[1])
    area, best = 0.0, ref[0]
    for i, (acc, logp) in enumerate(kept):
        best = max(best, acc)
        right = kept[i + 1][1] if i + 1 < len(kept) else ref[1]
        area += (best - ref[0]) * (right - logp)
    return area


def main(argv: list[str]) -> int:
    work = Path(tempfile.mkdtemp(prefix="pareto-rungs-"))
    cmd = [sys.executable, "-m", "nas", "search", "--workdir", str(work),
           "--objective", "accuracy,params", *argv]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return done.returncode
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{work / 'optuna.db'}")
    trials = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("samples")]
    first = min(t.user_attrs["samples"] for t in trials)
    promoted = [t for t in trials if t.user_attrs["samples"] > 1.5 * first]  # batch rounding
    stopped = [t for t in trials if t.user_attrs.get("status") == "pruned"
               and t.user_attrs["samples"] <= 1.5 * first]  # fmt: skip

    def median_params(group: list[optuna.trial.FrozenTrial]) -> str:
        return f"{statistics.median(t.user_attrs['params'] for t in group):,.0f}" if group else "-"

    front = [(t.values[0], math.log10(t.values[1])) for t in study.best_trials]
    print(f"trials with a result: {len(trials)}; first rung {first:,} samples")
    print(f"promoted past it: {len(promoted)}, median params {median_params(promoted)}")
    print(f"stopped at it:    {len(stopped)}, median params {median_params(stopped)}")
    print(f"front: {len(front)} trials, hypervolume {hypervolume(front, (0.0, 7.0)):.3f}")
    for acc, logp in sorted(front):
        print(f"  val_acc {acc:.4f}  params {10**logp:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
