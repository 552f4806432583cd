"""The MLflow UI view of a search: its trials sorted by val_acc with the key columns shown,
and the link that opens it.

MLflow's runs page (3.17, ``mlflow>=3.17,<3.18`` pinned in pyproject.toml) restores a page
state shared as the experiment tag ``mlflow.sharedViewState.<key>`` when the URL carries
``?viewStateShareKey=<key>``: its search facets (``orderByKey``, ``orderByAsc``,
``searchFilter``, ...) and its table state (``selectedColumns``, ``columnOrder``, ...).
The tag holds MLflow's saved-view envelope, ``{"name", "createdAt", "updatedAt", "state"}``
with the state as a JSON string, so the view is also listed, by name, in the page's views
menu. A column is ``<metrics|params|tags|attributes>.`<key>```. The
search writes its view when it opens its experiment, and prints the link; ``nas ui`` serves
a workdir's store and prints it again.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

from workers.trial import LATENCY_MS_B1, MACS, PARAMS, PEAK_MEMORY_MB, SAMPLES, VAL_ACC

#: The share key of the trials view (one per experiment, rewritten by every run).
VIEW_KEY = "nas-trials"
VIEW_TAG_PREFIX = "mlflow.sharedViewState."
VIEW_NAME = "nas: trials by val_acc"


def _metric(key: str) -> str:
    return f"metrics.`{key}`"


def _param(key: str) -> str:
    return f"params.`{key}`"


def _tag(key: str) -> str:
    return f"tags.`{key}`"


#: The runs table's columns, left to right: the result, the cost, how far and why it ended,
#: the architecture and recipe in a few words, where it ran.
COLUMNS = [
    _metric(VAL_ACC),
    _metric("best_val_acc"),
    _metric(PARAMS),
    _metric(MACS),
    _metric(LATENCY_MS_B1),
    _metric(SAMPLES),
    _metric("epochs"),
    _tag("nas.status"),
    "attributes.`Description`",
    _param("arch.blocks"),
    _param("arch.depth"),
    _param("arch.widths"),
    _param("train.optimizer"),
    _param("train.lr"),
    _param("train.batch_size"),
    _metric(PEAK_MEMORY_MB),
    _tag("nas.host"),
    _tag("nas.node"),
    "attributes.`Dataset`",
]


def view_state() -> dict[str, Any]:
    """The page state of the trials view: every run of the search, best val_acc first, the
    key columns in :data:`COLUMNS` order."""
    return {
        "searchFilter": "",
        "orderByKey": _metric(VAL_ACC),
        "orderByAsc": False,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "modelVersionFilter": "All Runs",
        "selectedColumns": COLUMNS,
        "columnOrder": COLUMNS,
        "runsHiddenMode": "SHOW_ALL",
        "viewMaximized": False,
        "runListHidden": False,
        "useGroupedValuesInCharts": True,
        "hideEmptyCharts": True,
        "groupBy": None,
        "groupsExpanded": {},
    }


def install_view(client: Any, experiment_id: str) -> None:
    """Write (or refresh) the trials view on the experiment."""
    key = VIEW_TAG_PREFIX + VIEW_KEY
    now = int(time.time() * 1000)
    try:
        created = json.loads(client.get_experiment(experiment_id).tags[key])["createdAt"]
    except (KeyError, ValueError, TypeError):
        created = now
    envelope = {
        "name": VIEW_NAME,
        "createdAt": created,
        "updatedAt": now,
        "state": json.dumps(view_state()),
    }
    client.set_experiment_tag(experiment_id, key, json.dumps(envelope))


def link(base_url: str, experiment_id: str) -> str:
    """The address that opens the trials view of ``experiment_id`` on the UI at ``base_url``,
    in the UI's model-training mode (``workflowType``: MLflow 3.17 picks GenAI or model
    training from this parameter, else from the browser's last choice, GenAI at first)."""
    return (
        f"{base_url.rstrip('/')}/#/experiments/{quote(str(experiment_id))}/runs"
        f"?workflowType=machine_learning&viewStateShareKey={VIEW_KEY}"
    )


def run_path(experiment_id: str, run_id: str) -> str:
    """The UI's route to one run, relative to the UI's address (as a run description's
    markdown links it)."""
    return f"#/experiments/{quote(str(experiment_id))}/runs/{run_id}"
