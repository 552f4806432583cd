"""The search's Optuna plots as PNG on its MLflow parent run (``plots/``), drawn by
``optuna.visualization.matplotlib``: optimisation history, parameter importances, parallel
coordinates, intermediate values (the learning curves, where pruning stopped each trial)
and, with several objectives, the Pareto front.

:class:`PlotRefresher` redraws them while the search runs, at most every
``NAS_PLOT_INTERVAL_S`` seconds (default 60) after a trial ends, in a background thread so
that the driver never waits on matplotlib; :meth:`PlotRefresher.final` draws them once more
when the search ends. A drawing grows with the study (parameter importances over thousands
of trials take tens of seconds), and the thread shares the driver's interpreter, so the next
one waits at least :data:`IDLE_PER_BUSY` times as long as the last took: the plots never
take more than a tenth of the driver's time.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workers.trial import VAL_ACC

logger = logging.getLogger(__name__)

ARTIFACT_DIR = "plots"
DEFAULT_INTERVAL_S = 60.0
#: Seconds the refresher stays idle per second its last drawing took.
IDLE_PER_BUSY = 9.0


def _plotters(multi_objective: bool) -> dict[str, Callable[..., Any]]:
    from optuna.visualization import matplotlib as ovm

    target = {"target": lambda t: t.values[0], "target_name": VAL_ACC} if multi_objective else {}
    plots: dict[str, Callable[..., Any]] = {
        "optimization_history": lambda s: ovm.plot_optimization_history(s, **target),
        "param_importances": lambda s: ovm.plot_param_importances(s, **target),
        "parallel_coordinate": lambda s: ovm.plot_parallel_coordinate(s, **target),
        "intermediate_values": ovm.plot_intermediate_values,
    }
    if multi_objective:
        plots["pareto_front"] = ovm.plot_pareto_front
    return plots


def render(study: Any, out_dir: Path) -> dict[str, str]:
    """Draw every plot of ``study`` that its trials allow into ``out_dir``; returns
    ``{name: png path}`` for the drawn ones and ``{name: why not}`` in the log for the rest
    (too few completed trials, no parameter shared by all trials, ...)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    drawn: dict[str, str] = {}
    multi = len(study.directions) > 1
    for name, plot in _plotters(multi).items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = plot(study)
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.set_size_inches(10, 6)
            path = out_dir / f"{name}.png"
            fig.savefig(path, dpi=90, bbox_inches="tight")
            drawn[name] = str(path)
        except Exception as exc:  # noqa: BLE001 (a plot the data cannot make yet is skipped)
            logger.debug("plot %s skipped: %s", name, exc)
        finally:
            plt.close("all")
    return drawn


class PlotRefresher:
    """Redraw the plots of ``study`` onto MLflow run ``run_id`` during and after the search."""

    def __init__(self, study: Any, client: Any, run_id: str, interval_s: float | None = None):
        self.study = study
        self.client = client
        self.run_id = run_id
        self.interval_s = (
            float(os.environ.get("NAS_PLOT_INTERVAL_S", DEFAULT_INTERVAL_S))
            if interval_s is None
            else interval_s
        )
        self._last = 0.0
        self._took = 0.0  # seconds the last drawing took
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.drawn: dict[str, str] = {}

    def trial_ended(self) -> None:
        """A trial ended: redraw in the background when the last drawing is old enough."""
        now = time.monotonic()
        if now - self._last < max(self.interval_s, (1 + IDLE_PER_BUSY) * self._took):
            return
        if self._thread is not None and self._thread.is_alive():
            return
        self._last = now
        self._thread = threading.Thread(target=self._refresh, name="nas-plots", daemon=True)
        self._thread.start()

    def final(self) -> dict[str, str]:
        """Draw once more, now (after the background drawing, if one is under way)."""
        if self._thread is not None:
            self._thread.join()
        self._refresh()
        return self.drawn

    def _refresh(self) -> None:
        start = time.monotonic()
        try:
            self._draw()
        finally:
            self._took = time.monotonic() - start

    def _draw(self) -> None:
        with self._lock, tempfile.TemporaryDirectory(prefix="nas-plots-") as tmp:
            try:
                drawn = render(self.study, Path(tmp))
                for path in drawn.values():
                    self.client.log_artifact(self.run_id, path, ARTIFACT_DIR)
                self.drawn = {k: f"{ARTIFACT_DIR}/{Path(v).name}" for k, v in drawn.items()}
            except Exception as exc:  # noqa: BLE001 (plots never stop a search)
                logger.warning("nas: the search plots were not refreshed: %s", exc)
