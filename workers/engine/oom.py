"""Out of memory: one more try with half the batch size before a trial ends ``oom``.

A network that does not fit at the sampled batch size often fits at half of it; the
learning rate is halved with it (the linear scaling rule of Goyal et al., 2017), so the
retried run trains the same configuration at a smaller scale instead of a new one. The
retry starts from scratch; what was reported before it is not reported again (the caller's
``on_epoch`` sees the fidelity points again and skips those it sent). A second
out-of-memory ends the run ``oom``, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workers.engine.results import TrainResult
from workers.settings import TrainSettings
from workers.status import TrialStatus


def retry_smaller_on_oom(
    run: Callable[..., TrainResult], settings: TrainSettings, **kwargs: Any
) -> tuple[TrainResult, str | None]:
    """``run(settings=settings, **kwargs)`` (:func:`workers.engine.train` or
    :func:`workers.engine.train_folds`), once more at half the batch size and learning rate
    when it ran out of memory. Returns (result, note): the note says what was retried."""
    result = run(settings=settings, **kwargs)
    if result.status != TrialStatus.OOM or settings.batch_size < 2:
        return result, None
    smaller = settings.replace(batch_size=settings.batch_size // 2, lr=settings.lr / 2)
    note = (
        f"out of memory at batch {settings.batch_size} ({result.reason}); trained again at "
        f"batch {smaller.batch_size}, lr {smaller.lr:g}"
    )
    kwargs["resume_state"] = None
    return run(settings=smaller, **kwargs), note
