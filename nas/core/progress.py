"""Progress bars for the long steps of a command (loading a dataset, retraining, verifying
an export): tqdm on a terminal, nothing when stderr is not one (logs, CI, pipes)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm


def bar(total: int | None, desc: str, unit: str = "it") -> tqdm:
    """A bar on stderr that draws only on a terminal; close it (or use ``with``)."""
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=not sys.stderr.isatty(),
        leave=False,
        dynamic_ncols=True,
    )


@contextmanager
def task(desc: str) -> Iterator[None]:
    """One step with no inner progress (reading a dataset): a bar showing its elapsed time."""
    with bar(1, desc, unit="step") as b:
        yield
        b.update(1)
