"""``nas space check`` at full count: every shipped space, 1,000 samples each, must be 100% ok.

Each sample is drawn with a seeded random trial, built and run forward + backward on a small
input of the space's first dimensionality (32x32x3 images, 128-step series, 16^3 volumes;
plus the image space on 8x8x1 digits). Prints, per space: sampled, ok, rejected (over the
space's limits; still built), seconds. Exit 1 when any sample failed.

    python benchmarks/space_check.py                 # 1,000 samples per space
    python benchmarks/space_check.py --samples 50    # quick mode

Results: benchmarks/README.md, "Search spaces".
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from nas.commands.space import DEFAULT_INPUT, check_space
from search_spaces import list_spaces, load_space


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spaces", nargs="*", default=None, help="default: every shipped space")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    runs = []
    for name in args.spaces or list_spaces():
        space = load_space(name)
        dims = space.dims[0]
        runs.append((space, dims, *DEFAULT_INPUT[dims]))
        if name == "image":
            runs.append((space, 2, 1, (8, 8)))  # digits-sized: the tightest depth cap

    print(f"{'space':<16} {'input':<14} {'sampled':>8} {'ok':>6} {'rejected':>9} {'seconds':>8}")
    failed = 0
    for space, dims, channels, size in runs:
        start = time.monotonic()
        report = check_space(
            space, samples=args.samples, seed=args.seed, dims=dims, channels=channels, size=size
        )
        seconds = time.monotonic() - start
        shape = f"{channels}x" + "x".join(map(str, size))
        print(
            f"{space.name:<16} {shape:<14} {report['sampled']:>8} {report['ok']:>6} "
            f"{len(report['rejected']):>9} {seconds:>8.1f}",
            flush=True,
        )
        for f in report["failures"][:5]:
            print(f"    sample {f['index']} ({f['spec_id']}): {f['reason']}", file=sys.stderr)
        failed += len(report["failures"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
