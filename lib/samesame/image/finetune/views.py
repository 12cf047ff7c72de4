"""The frozen trunk's outputs, computed once per image and view (clean + augmented copies), optionally cached.

Training only the small tail on these cached features is exactly training the whole model with a frozen trunk
on those views, at a fraction of the cost. Memory: ``n_train * n_views * H * W * C * 4`` bytes; with
EfficientNet-Lite0 cut before the last stage that is ``(image_size / 32)^2 * 192 * 4`` bytes per view (12 KiB at
128 px, 48 KiB at 256 px). Test images are cached once (clean).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from samesame.core.files import replaced_file
from samesame.image.backbones import Backbone
from samesame.image.embed import STATUS_DTYPE, cache_key, default_workers, model_runner
from samesame.image.images import is_usable, load_array

CROP_AREA = (0.6, 1.0)  # crop-zoom keeps most of the product: listings are framed around it
CROP_ASPECT = (3 / 4, 4 / 3)
JITTER = 0.2  # brightness, contrast, saturation factors drawn from [1 - JITTER, 1 + JITTER]


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One listing-like variant of a uint8 square image: mirror, crop-zoom, colour jitter.

    Sellers re-shoot, crop and re-grade the same product; rotations and heavy
    distortions are rare in listings, so they are not used.
    """
    size = image.shape[0]
    img = Image.fromarray(image)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    area, aspect = rng.uniform(*CROP_AREA), math.exp(rng.uniform(*np.log(CROP_ASPECT)))
    w = min(size, round(size * math.sqrt(area * aspect)))
    h = min(size, round(size * math.sqrt(area / aspect)))
    x0, y0 = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
    x = np.asarray(img.resize((size, size), Image.Resampling.BILINEAR, box=(x0, y0, x0 + w, y0 + h)), np.float32)
    brightness, contrast, saturation = rng.uniform(1 - JITTER, 1 + JITTER, size=3)
    x = x * brightness
    x = (x - x.mean()) * contrast + x.mean()
    grey = x.mean(axis=2, keepdims=True)
    x = (x - grey) * saturation + grey
    return np.clip(x, 0, 255).round().astype(np.uint8)


def image_views(image: np.ndarray, n_views: int, seed: int, row: int) -> np.ndarray:
    """(n_views, S, S, 3): the clean image, then augmented copies seeded by (seed, row, view)."""
    views = [image] + [augment(image, np.random.default_rng([seed, row, v])) for v in range(1, n_views)]
    return np.stack(views)


@dataclass
class TrunkViews:
    """Frozen-trunk outputs of every image and view of one split."""

    features: np.ndarray  # float32 (n, n_views, H, W, C); view 0 is the clean image
    status: np.ndarray  # str (n,), samesame.image.images statuses

    @property
    def ok(self) -> np.ndarray:
        return is_usable(self.status)


def trunk_views(paths: Sequence, trunk: Backbone, n_views: int, seed: int, *, batch_size: int = 64,
                cache_dir: str | Path | None = None, progress: bool = True, desc: str = "trunk") -> TrunkViews:
    """Run the frozen trunk over ``n_views`` views of every usable image (unusable ones stay zero, uncomputed).

    Images are decoded ``batch_size`` at a time in threads, so memory is one batch of
    views plus the features. With ``cache_dir`` the result is stored as one .npz keyed
    by the paths (size, mtime), the trunk, the image size, n_views and seed.
    """
    paths = list(paths)
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"{cache_key(paths, trunk)}-views{n_views}-seed{seed}.npz"
        if cache.exists():
            with np.load(cache, allow_pickle=False) as stored:
                return TrunkViews(stored["features"], stored["status"])
    size, shape = trunk.input_size, tuple(trunk.model.output_shape[1:])
    features = np.zeros((len(paths), n_views, *shape), dtype=np.float32)
    status = np.full(len(paths), "", dtype=STATUS_DTYPE)
    batch = np.zeros((batch_size * n_views, size, size, 3), dtype=np.float32)  # fixed shape: no retracing
    run = model_runner(trunk.model)
    with ThreadPoolExecutor(default_workers()) as pool, tqdm(total=len(paths), desc=desc, unit="img",
                                                             disable=not progress) as bar:
        for start in range(0, len(paths), batch_size):
            rows = range(start, min(start + batch_size, len(paths)))
            loaded = list(pool.map(partial(load_array, size=size), [paths[r] for r in rows]))
            status[rows.start : rows.stop] = [s for _, s in loaded]
            usable = [(r, img) for r, (img, s) in zip(rows, loaded) if is_usable([s])[0]]
            if usable:  # a batch of missing images costs nothing (csv-only data has thousands)
                views = list(pool.map(lambda item: image_views(item[1], n_views, seed, item[0]), usable))
                batch[: len(usable) * n_views] = np.concatenate(views)
                out = run(batch)[: len(usable) * n_views]
                features[[r for r, _ in usable]] = out.reshape(len(usable), n_views, *shape)
            bar.update(len(rows))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with replaced_file(cache) as tmp:
            np.savez(tmp, features=features, status=status)
    return TrunkViews(features, status)
