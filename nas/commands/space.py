"""``nas space check SPACE``: sample specs from a space and prove that each one builds and runs.

Every sample is drawn with a seeded random trial (no Optuna study), built with
:func:`search_spaces.build` and run forward and backward on a small input of the space's
dimensionality, so a space file that can produce a broken network is caught before a search
spends a worker on it. ``--json`` prints ``{"space", "input", "sampled", "ok", "failures",
"rejected", "export", "seconds"}`` where each failure is ``{"index", "spec_id", "reason"}``; ``rejected``
lists samples over the space's ``limits`` (the sampler refuses them before training; their
smallest version is still built and run). Exit 0 when every sample ran, 1 otherwise, 2 for
bad input. ``--export`` also exports every sample to ONNX and TorchScript and verifies the
files against PyTorch, as ``nas export`` does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from nas.core.errors import UsageError

#: Small inputs per dimensionality: (channels, size) used when the user gives none.
DEFAULT_INPUT = {1: (1, (128,)), 2: (3, (32, 32)), 3: (1, (16, 16, 16))}
BATCH = 2


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``nas space`` and its ``check`` sub-command."""
    parser = subparsers.add_parser(
        "space",
        help="check a search-space file",
        description="Inspect and check search-space files (search_spaces/*.yaml).",
    )
    sub = parser.add_subparsers(dest="space_command", metavar="SUBCOMMAND")
    sub.required = True
    check = sub.add_parser(
        "check",
        help="sample specs from a space, build each and run forward + backward",
        description="Sample specs from SPACE with a seeded random sampler, build each one and "
        "run a forward and backward pass on a small input. Exit 0 when all ran, 1 otherwise.",
    )
    check.add_argument("space", metavar="SPACE", help="a shipped space name or a .yaml path")
    check.add_argument("--samples", default="20", help="how many specs to sample (default 20)")
    check.add_argument("--seed", default="0", help="random seed (default 0)")
    check.add_argument("--dims", default=None, help="input dims 1, 2 or 3 (default: the space's)")
    check.add_argument("--channels", default=None, help="input channels (default per dims)")
    check.add_argument(
        "--size", default=None, help="input size: 32, 32x32 or 8x8x8 (default: small per dims)"
    )
    check.add_argument("--classes", default="10", help="number of classes (default 10)")
    check.add_argument(
        "--export",
        action="store_true",
        help="also export each sample to ONNX and TorchScript (dynamic batch) and verify the "
        "files against PyTorch, as `nas export` does (default: off)",
    )
    check.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    check.set_defaults(func=run)
    parser.set_defaults(func=run)


def _int(option: str, text: Any, low: int, high: int | None = None) -> int:
    """An int option within [low, high], or UsageError naming it."""
    accepted = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    try:
        value = int(str(text))
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected {accepted}") from None
    if value < low or (high is not None and value > high):
        raise UsageError(f"{option} {text!r}: expected {accepted}")
    return value


def parse_size(text: str, dims: int) -> tuple[int, ...]:
    """``32`` -> (32,)*dims; ``32x32`` / ``32,32`` -> (32, 32); must match ``dims``."""
    parts = [p for p in str(text).lower().replace(",", "x").split("x")]
    accepted = f"{dims} positive integer(s) like {'x'.join(['16'] * dims)}, or one integer"
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(f"--size {text!r}: expected {accepted}") from None
    if len(sizes) == 1:
        sizes = sizes * dims
    if len(sizes) != dims or min(sizes) < 1:
        raise UsageError(f"--size {text!r}: expected {accepted}")
    return sizes


def check_space(
    space: Any,
    *,
    samples: int,
    seed: int,
    dims: int,
    channels: int,
    size: tuple[int, ...],
    num_classes: int = 10,
    export: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Sample ``samples`` specs from ``space``, build and run each; the report as a dict.

    A failure is anything that stops a spec from sampling, building, or running forward and
    backward to finite gradients (and, with ``export``, from exporting to ONNX and
    TorchScript and verifying the files against PyTorch); its reason is the exception's
    message. ``progress(done, total)`` is called after each sample.
    """
    import torch

    import search_spaces
    from search_spaces.sampler import RandomTrial, SampleRejected

    torch.manual_seed(seed)
    failures: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    ok = 0
    for index in range(samples):
        trial = RandomTrial(seed * 1_000_003 + index)
        sid = None
        try:
            try:
                spec, _train = search_spaces.sample(
                    trial, space, dims=dims, channels=channels, size=size, num_classes=num_classes
                )
            except SampleRejected as exc:  # over the space's limits: still must build
                spec = exc.spec
                rejected.append({"index": index, "spec_id": search_spaces.spec_id(spec),
                                 "reason": exc.reason})  # fmt: skip
            sid = search_spaces.spec_id(spec)
            network = search_spaces.build(spec, num_classes)
            _run_once(network, spec, num_classes, torch)
            if export:
                _export_once(network, spec, num_classes)
            ok += 1
        except Exception as exc:  # noqa: BLE001 -- a checker reports every failure, whatever it is
            failures.append(
                {"index": index, "spec_id": sid, "reason": f"{type(exc).__name__}: {exc}"}
            )
        if progress is not None:
            progress(index + 1, samples)
    return {
        "space": space.name,
        "input": {"dims": dims, "channels": channels, "size": list(size)},
        "sampled": samples,
        "ok": ok,
        "failures": failures,
        "rejected": rejected,
        "export": export,
    }


def _run_once(model: Any, spec: dict, num_classes: int, torch: Any) -> None:
    """Forward + backward on a random batch at the spec's input shape; finite gradients."""
    inp = spec["input"]
    x = torch.randn(BATCH, inp["channels"], *inp["size"])
    model.train()
    out = model(x)
    if tuple(out.shape) != (BATCH, num_classes):
        raise ValueError(f"output shape {tuple(out.shape)}, expected {(BATCH, num_classes)}")
    out.float().logsumexp(dim=1).mean().backward()
    for name, p in model.named_parameters():
        if p.grad is not None and not torch.isfinite(p.grad).all():
            raise ValueError(f"non-finite gradient in {name}")


def _export_once(network: Any, spec: dict, num_classes: int) -> None:
    """Export the network (eval mode, unit normalisation) to ONNX and TorchScript with a
    dynamic batch axis in a temporary folder and verify both against PyTorch."""
    import tempfile
    from pathlib import Path

    from nas.export import DeployableModel
    from nas.export.meta import export_metadata
    from nas.export.pipeline import write_verified

    channels = spec["input"]["channels"]
    model = DeployableModel(
        network,
        [0.0] * channels,
        [1.0] * channels,
        input_size=spec["input"]["size"],
        resolution=float(spec["scaling"]["resolution"]),
    ).eval()
    metadata = export_metadata({"spec": spec, "num_classes": num_classes}, None)
    with tempfile.TemporaryDirectory(prefix="nas-space-export-") as tmp:
        write_verified(model, metadata, ["onnx", "torchscript"], Path(tmp), dynamic_batch=True)


def run(args: argparse.Namespace) -> int:
    """Run ``nas space check``; see the module docstring."""
    import search_spaces

    samples = _int("--samples", args.samples, 1)
    seed = _int("--seed", args.seed, 0)
    classes = _int("--classes", args.classes, 2)
    try:
        space = search_spaces.load_space(args.space)
    except search_spaces.SpaceError as exc:
        raise UsageError(str(exc)) from None
    dims = _int("--dims", args.dims, 1, 3) if args.dims is not None else space.dims[0]
    if dims not in space.dims:
        accepted = ", ".join(str(d) for d in space.dims)
        raise UsageError(f"--dims {dims}: space '{space.name}' accepts dims {accepted}")
    channels = (
        _int("--channels", args.channels, 1)
        if args.channels is not None
        else DEFAULT_INPUT[dims][0]
    )
    size = parse_size(args.size, dims) if args.size is not None else DEFAULT_INPUT[dims][1]

    import torch

    # Tiny tensors: thread start-up costs more than it saves, and cores are shared.
    torch.set_num_threads(1)
    start = time.monotonic()
    show = sys.stderr.isatty() or samples >= 50

    def progress(done: int, total: int) -> None:
        if show and (done == total or done % max(1, total // 20) == 0):
            print(f"\rnas space check {space.name}: {done}/{total}", end="", file=sys.stderr)
            if done == total:
                print(file=sys.stderr)

    report = check_space(
        space,
        samples=samples,
        seed=seed,
        dims=dims,
        channels=channels,
        size=size,
        num_classes=classes,
        export=args.export,
        progress=progress,
    )
    report["seconds"] = round(time.monotonic() - start, 2)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"space {space.name} (input {dims}D, {channels} ch, {'x'.join(map(str, size))}): "
            f"{report['ok']}/{report['sampled']} ok"
            + (" (exported and verified)" if args.export else "")
            + f" in {report['seconds']} s"
            + (f", {len(report['rejected'])} over the space's limits" if report["rejected"] else "")
        )
        for f in report["failures"][:20]:
            print(f"  sample {f['index']} ({f['spec_id']}): {f['reason']}")
        if len(report["failures"]) > 20:
            print(f"  ... and {len(report['failures']) - 20} more failures")
    return 0 if not report["failures"] else 1
