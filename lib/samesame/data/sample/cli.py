"""The command line: ``python -m samesame.data.sample OUT_DIR ...`` generates a sample and prints its summary."""

from __future__ import annotations

import argparse
import json
from fractions import Fraction
from typing import Sequence

from samesame.data.sample.write import generate_sample, rehearsal_arguments


def main(argv: Sequence[str] | None = None) -> dict:
    """CLI: ``python -m samesame.data.sample OUT_DIR [--groups N] [--seed S] [--image-size PX]``, or
    ``--scale 1/8`` for a rehearsal competition (Kaggle's size times the scale, 640 px photos)."""
    parser = argparse.ArgumentParser(prog="python -m samesame.data.sample",
                                     description="Generate the synthetic Shopee-like sample in Kaggle's layout.")
    parser.add_argument("out_dir", help="a new or empty folder to write train.csv, test.csv, *_images/ ... into")
    parser.add_argument("--scale", type=Fraction, default=None,
                        help="a rehearsal competition at this share of Kaggle's size (1: 34,250 train and 70,000 "
                             "test listings, photos of 512-960 px); sets --groups, --test-fraction, --image-size")
    parser.add_argument("--groups", type=int, default=450, help="number of products (label groups), default 450")
    parser.add_argument("--seed", type=int, default=0, help="random seed, default 0")
    parser.add_argument("--image-size", type=int, default=256, help="typical image side in pixels, default 256")
    parser.add_argument("--test-fraction", type=float, default=0.3, help="share of groups put in test, default 0.3")
    parser.add_argument("--workers", type=int, default=2, help="rendering processes, default 2")
    args = parser.parse_args(argv)
    sizes = ({"n_groups": args.groups, "test_fraction": args.test_fraction, "image_size": args.image_size}
             if args.scale is None else rehearsal_arguments(float(args.scale)))
    try:
        summary = generate_sample(args.out_dir, seed=args.seed, workers=args.workers, **sizes)
    except (FileExistsError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    print(json.dumps(summary))
    return summary
