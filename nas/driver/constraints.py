"""``--constraint latency<=2ms``: soft limits. Each ended trial gets, per limit, its value
minus the limit as an Optuna constraint (``Trial.set_constraint``, Optuna 5's interface;
at most 0 is within the limit), and the samplers that read constraints (TPE, NSGA-II)
prefer configurations within the limits and rank those over them by how far over they
are. Hard limits that reject a configuration before training are ``--max-params`` and
``--max-macs``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nas.core.config import CONSTRAINED, parse_constraint


class SoftLimits:
    """The constraints of ``constraints`` (as ``--constraint`` wrote them), plain data."""

    def __init__(self, constraints: Sequence[str]) -> None:
        self.limits = [parse_constraint(text) for text in constraints]

    def excess(self, result: dict[str, Any]) -> dict[str, float]:
        """Per limited cost, its value in ``result`` (a trial's last report: params and MACs
        counted before training, the latency as the worker measured it) minus the limit;
        a value the trial never reported (it failed first) counts as within (0)."""
        out = {}
        for cost, limit in self.limits:
            value = result.get(CONSTRAINED[cost])
            out[cost] = float(value) - limit if value is not None else 0.0
        return out
