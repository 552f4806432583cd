"""``nas leaderboard``: the trials of a search, best first, read from its Optuna study."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nas.core.config import DEFAULT_NAME, DEFAULT_WORKDIR, default_storage, search_storage


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "leaderboard",
        help="show the trials of a search without running anything",
        description=__doc__,
    )
    p.add_argument("--workdir", default=DEFAULT_WORKDIR, help="the search's working folder")
    p.add_argument("--name", default=DEFAULT_NAME, help="the search's name (its Optuna study)")
    p.add_argument(
        "--storage",
        help="Optuna storage URL (default: the search's, its password from $NAS_STORAGE)",
    )
    p.add_argument(
        "--limit", type=int, default=20, help="rows in the table (default 20; --json prints all)"
    )
    p.add_argument("--json", action="store_true", help="a JSON list of every trial")
    p.add_argument(
        "--pareto",
        action="store_true",
        help="only the Pareto front of a multi-objective search (the best trial otherwise)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas.core.errors import UsageError
    from nas.study.records import format_table, load_study, trial_records

    if args.limit < 1:
        raise UsageError(f"--limit {args.limit}: expected an integer >= 1 (--json prints all)")
    workdir = Path(args.workdir)
    storage = search_storage(workdir, args.name, args.storage)  # the one the search used
    if not storage and not (workdir / "optuna.db").is_file():
        raise UsageError(f"--workdir {args.workdir!r}: no search found there (no optuna.db)")
    study = load_study(storage or default_storage(workdir), args.name)
    records = trial_records(study)
    if args.pareto:
        records = [r for r in records if r.pareto]
    if args.json:
        print(json.dumps([r.to_json() for r in records], indent=2))
        return 0
    multi = len(study.directions) > 1
    print(format_table(records, limit=args.limit, multi=multi))
    return 0
