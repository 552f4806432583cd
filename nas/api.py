"""The Python API: the search, retrain and export of the CLI, from a notebook or a script.

    import nas

    result = nas.search(dataset="digits", budget="3m", workdir="nas-work")
    result.leaderboard_frame().head()      # pandas, where installed; result.leaderboard otherwise
    retrained = result.retrain(epochs=30)  # the best trial, trained on training + validation
    exported = result.export("onnx,torchscript")

Every option of ``nas search`` is a keyword (``max_params="500k"``, ``sampler="random"``,
``objective=["accuracy", "params"]``), validated exactly as the CLI validates it: a bad value
raises :class:`nas.UsageError` (a ``ValueError``) with the CLI's one-line message, before
anything is written. ``nas.load(workdir, name)`` opens a search that already ran.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.core.config import DEFAULT_NAME, DEFAULT_WORKDIR
from nas.core.errors import UsageError

__all__ = ["SearchResult", "SearchStopped", "load", "search"]


class SearchStopped(UsageError):
    """The search ended before its budget without a result to hand over (e.g. no
    architecture fits ``max_params``); the message says why (``nas search`` exits 2)."""


#: options given once per value (``action="append"``)
REPEATED = frozenset({"constraint"})


def _flags(options: dict[str, Any]) -> list[str]:
    """``{"max_params": "500k", "resume": True}`` -> ``["--max-params", "500k", "--resume"]``."""
    argv: list[str] = []
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif key in REPEATED and not isinstance(value, str):
            argv += [f"{flag}={v}" for v in value]  # constraint=["latency<=2ms", ...]
        elif isinstance(value, Iterable) and not isinstance(value, str | bytes | Path):
            argv.append(f"{flag}={','.join(str(v) for v in value)}")
        else:
            argv.append(f"{flag}={value}")
    return argv


def search(
    dataset: str = "digits",
    budget: str | None = None,
    *,
    space: str | Path | None = None,
    objective: str | Iterable[str] = "accuracy",
    workdir: str | Path = DEFAULT_WORKDIR,
    name: str = DEFAULT_NAME,
    seed: int = 0,
    resume: bool = False,
    **options: Any,
) -> SearchResult:
    """Run ``nas search`` and return its :class:`SearchResult`.

    ``budget``: ``"90s"``, ``"30m"``, ``"2h"``, ``"50trials"``, ``"2cpu-h"``. ``options``: any
    other ``nas search`` option by its Python name (``data_dir``, ``max_params``,
    ``sampler``, ``folds``, ``storage``, ``tracking_uri``, ``ray_address`` ...).
    Raises :class:`UsageError` on bad input, :class:`SearchStopped` when the search stops
    early with nothing found, ``KeyboardInterrupt`` when interrupted (resume it with
    ``resume=True``).
    """
    from nas.cli import build_parser
    from nas.commands.search import execute

    given = dict(
        dataset=dataset, budget=budget, space=space, objective=objective, workdir=workdir,
        name=name, seed=seed, resume=resume, **options,
    )  # fmt: skip
    args = build_parser().parse_args(["search", *_flags(given)])
    cfg, outcome = execute(args)
    if outcome.status == "stopped":
        raise SearchStopped(outcome.extra["stop_reason"])
    if outcome.status == "interrupted":
        raise KeyboardInterrupt(f"search {cfg.name!r} interrupted; resume=True continues it")
    return SearchResult(
        workdir=Path(cfg.workdir),
        name=cfg.name,
        storage=cfg.storage,
        tracking_uri=cfg.tracking_uri,
        records=outcome.records,
    )


def load(workdir: str | Path = DEFAULT_WORKDIR, name: str = DEFAULT_NAME) -> SearchResult:
    """The :class:`SearchResult` of a search that ran before (read from its stores)."""
    from nas.core.config import default_tracking_uri, search_tracking_uri
    from nas.retrain.run import open_search
    from nas.study.records import trial_records

    workdir = Path(workdir)
    saved, storage, study = open_search(workdir, name)
    return SearchResult(
        workdir=workdir,
        name=name,
        storage=storage,
        tracking_uri=search_tracking_uri(workdir, name) or default_tracking_uri(workdir),
        records=trial_records(study),
    )


@dataclass
class SearchResult:
    """A finished search: its trials (best first) and the way to its retrain and export."""

    workdir: Path
    name: str
    storage: str = field(repr=False)  # live URLs: a password must not show in a notebook
    tracking_uri: str = field(repr=False)
    records: list[Any]  # nas.study.records.TrialRecord, best first

    @property
    def leaderboard(self) -> list[dict[str, Any]]:
        """Every trial as a plain dict (``nas leaderboard --json``), best first."""
        return [r.to_json() for r in self.records]

    def leaderboard_frame(self) -> Any:
        """The leaderboard as a pandas DataFrame (pandas must be installed)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError(
                "leaderboard_frame() needs pandas (pip install pandas); "
                "result.leaderboard is the same table as a list of dicts"
            ) from exc
        return pd.DataFrame(self.leaderboard)

    @property
    def best(self) -> Any:
        """The trial ``retrain`` takes: the best completed one, or the best of those the
        budget stopped when none completed (None when no trial has a value)."""
        from nas.study.records import handover_record

        return handover_record(self.records)[0]

    def retrain(
        self,
        *,
        trial: int | None = None,
        epochs: int | None = None,
        seed: int | None = None,
        init_from: str | Path | None = None,
        freeze: str | None = None,
    ) -> Any:
        """``nas retrain``: train the best trial (or ``trial``) on training + validation data
        and test it, from ``init_from``'s weights where they match (``freeze``:
        ``"stem,stages:2"``); returns :class:`nas.retrain.run.RetrainResult`."""
        from nas.retrain.run import retrain

        return retrain(
            self.workdir,
            self.name,
            trial=trial,
            epochs=epochs,
            storage=self.storage,
            tracking_uri=self.tracking_uri,
            seed=seed,
            init_from=init_from,
            freeze=freeze,
        )

    def export(
        self,
        formats: str | Iterable[str] = "onnx,torchscript",
        *,
        run_id: str | None = None,
        out: str | Path | None = None,
        dynamic_batch: bool = False,
        register: bool = True,
        register_name: str | None = None,
    ) -> Any:
        """``nas export``: the best retrain (or retrain run ``run_id``) as verified files,
        registered in MLflow unless ``register`` is False; returns
        :class:`nas.export.ExportResult` (raises ExportError when verification fails)."""
        from nas.export.search_export import export_from_search

        fmts = formats if isinstance(formats, str) else ",".join(formats)
        result, _ = export_from_search(
            self.workdir,
            self.name,
            formats=fmts,
            run_id=run_id,
            out=out,
            dynamic_batch=dynamic_batch,
            register=register,
            register_name=register_name,
            tracking_uri=self.tracking_uri,
        )
        return result
