"""Streaming image embeddings: threaded decoding overlapped with the model, resumable disk cache.

Decoding runs in a thread pool (PIL releases the GIL while decoding and resizing)
a bounded window ahead of the model, so memory is a few batches no matter how
many images there are, and on 2 CPU cores the model keeps the cores busy while
the next batch is decoded. Unusable images (see :mod:`samesame.image.images`) never
reach the model: their rows stay zero and their status says why.

GPU: call :func:`configure_accelerator` *before* building the model, because the
Keras dtype policy is read when layers are created.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
import zipfile
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from samesame.core.files import replaced_file
from samesame.image.images import STATUSES, USABLE_STATUSES, count_statuses, is_usable, load_array
from samesame.image.onnx_model import model_runner, run_model

CHUNK_SIZE = 1024  # rows per cache file: what an interrupted run can lose at most
STATUS_DTYPE = f"<U{max(map(len, STATUSES))}"


@dataclass
class Embeddings:
    """Per-image vectors and why some of them are zero."""

    vectors: np.ndarray  # float32 (n, dim); all-zero rows where the image was unusable
    status: np.ndarray  # str (n,), one of samesame.image.images.STATUSES

    @property
    def ok(self) -> np.ndarray:
        """Rows whose vector comes from real pixels."""
        return is_usable(self.status)

    @property
    def counts(self) -> dict[str, int]:
        """Images per status, every status present, for run reports."""
        return count_statuses(self.status)


PRECISIONS = ("auto", "float32", "mixed_float16")
"""Keras dtype policies a run may ask for (settings key ``precision``); ``auto`` picks by the hardware."""


def configure_accelerator(precision: str) -> str:
    """Set Keras' dtype policy and say where models run; call it before any model is built.

    ``auto``: mixed_float16 on a visible GPU (about 2x faster, half the memory), float32 on a CPU.
    ``float32`` / ``mixed_float16`` force it: a GPU whose float16 misbehaves can stay in float32, and CI
    forces mixed_float16 on a CPU so the GPU path's dtype errors surface without a GPU. Memory growth is
    enabled so TensorFlow does not grab the whole GPU. Embeddings come out float32 either way.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    policy = ("mixed_float16" if gpus else "float32") if precision == "auto" else precision
    keras.mixed_precision.set_global_policy(policy)
    if not gpus:
        return f"cpu ({policy})"
    names = [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in gpus]
    return f"gpu: {', '.join(names)} ({policy})"


def default_workers() -> int:
    """Decoding threads: every usable core but one, which stays with the model.

    One thread decodes 300-600 JPEGs/s, over 10x what a CPU convnet consumes, so on
    2 cores a second decoder gains nothing measurable and only competes with the
    model's threads; a GPU host's many cores do need many decoders to keep up.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores - 1)


def cache_key(paths: Sequence, backbone) -> str:
    """Directory name for one (data, backbone) pair.

    Covers every path with its size and mtime, so a re-downloaded or edited
    image invalidates the cache, and the backbone's name, weights and input size.
    """
    digest = hashlib.sha256()
    model_id = [backbone.name, str(backbone.weights), backbone.input_size, backbone.dim, CHUNK_SIZE]
    digest.update(json.dumps(model_id).encode())
    for path in paths:
        digest.update(f"{_image_key(path)}\n".encode())
    return f"{backbone.name}-{backbone.input_size}-{digest.hexdigest()[:16]}"


def _image_key(path) -> str:
    """One image file as the cache knows it: its path, size and modification time."""
    try:
        info = os.stat(path)
        return f"{path}\t{info.st_size}\t{info.st_mtime_ns}"
    except (OSError, TypeError, ValueError):  # missing file, None or NaN path
        return f"{path}\t-"


def _chunk_fingerprint(keys: Sequence[str], vectors: np.ndarray, status: np.ndarray) -> str:
    """SHA-256 of a chunk's rows in order, each with the image it belongs to: stored with the chunk and checked
    when read, so a chunk zeroed, reordered or copied from other images is recomputed, never used."""
    digest = hashlib.sha256("\n".join(keys).encode())
    digest.update(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    digest.update(np.asarray(status, dtype=STATUS_DTYPE).tobytes())
    return digest.hexdigest()


def _chunk_file(cache: Path, rows: range) -> Path:
    return cache / f"chunk_{rows.start // CHUNK_SIZE:05d}.npz"


def _load_chunk(path: Path, rows: range, vectors: np.ndarray, status: np.ndarray, keys: Sequence[str]) -> bool:
    """Fill rows from a cached chunk; False when it is absent, unreadable or not the one written for these images
    (it is then recomputed).

    A broken chunk (a disk filled up, a copy cut short, rows zeroed or reordered) warns with its path, so a cache
    that keeps breaking is noticed, but never stops the run: its rows are simply embedded again.
    """
    if not path.exists():
        return False
    try:
        with np.load(path, allow_pickle=False) as cached:
            chunk_vectors, chunk_status = cached["vectors"], cached["status"]
            fingerprint = str(cached["fingerprint"]) if "fingerprint" in cached.files else None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        warnings.warn(f"{path}: unreadable embedding-cache chunk ({type(err).__name__}: {err}); recomputing its "
                      f"{len(rows)} rows and overwriting it", stacklevel=2)
        return False
    if chunk_vectors.shape != (len(rows), vectors.shape[1]) or chunk_status.shape != (len(rows),):
        warnings.warn(f"{path}: embedding-cache chunk holds vectors {chunk_vectors.shape} and status "
                      f"{chunk_status.shape}, expected {len(rows)} rows of {vectors.shape[1]} values; recomputing "
                      "them and overwriting it", stacklevel=2)
        return False
    if not np.isfinite(chunk_vectors).all() or not np.isin(chunk_status, STATUSES).all():
        warnings.warn(f"{path}: embedding-cache chunk holds NaN or infinite vectors or unknown statuses, which no "
                      f"embedding has; recomputing its {len(rows)} rows and overwriting it", stacklevel=2)
        return False
    if fingerprint != _chunk_fingerprint(keys, chunk_vectors, chunk_status):
        warnings.warn(f"{path}: embedding-cache chunk does not match the fingerprint it was written with (its rows "
                      "were changed or reordered, belong to other images, or it predates fingerprints); recomputing "
                      f"its {len(rows)} rows and overwriting it", stacklevel=2)
        return False
    vectors[rows.start : rows.stop] = chunk_vectors
    status[rows.start : rows.stop] = chunk_status
    return True


def _chunks_to_compute(cache: Path | None, keys: Sequence[str], vectors: np.ndarray,
                       status: np.ndarray) -> list[range]:
    """Row ranges of CHUNK_SIZE still to embed, after filling every chunk the cache already holds."""
    n = len(vectors)
    chunks = [range(start, min(start + CHUNK_SIZE, n)) for start in range(0, n, CHUNK_SIZE)]
    if cache is None:
        return chunks
    return [rows for rows in chunks
            if not _load_chunk(_chunk_file(cache, rows), rows, vectors, status, keys[rows.start : rows.stop])]


def _save_chunk(path: Path, rows: range, vectors: np.ndarray, status: np.ndarray, keys: Sequence[str]) -> None:
    """Write the rows with their fingerprint (:func:`_chunk_fingerprint`; ``keys``: the chunk's images) via a
    temporary file and rename, so a killed run never leaves a half-written chunk; a folder in the chunk's place
    (no chunk, :func:`_load_chunk` warned) is removed first."""
    chunk_vectors, chunk_status = vectors[rows.start : rows.stop], status[rows.start : rows.stop]
    with replaced_file(path) as tmp:
        np.savez(tmp, vectors=chunk_vectors, status=chunk_status,
                 fingerprint=np.array(_chunk_fingerprint(keys, chunk_vectors, chunk_status)))
        if path.is_dir():
            shutil.rmtree(path)


def _decoded(paths: Sequence, rows: Iterator[int], size: int, workers: int, window: int):
    """Yield (row, uint8 image, status) in row order, decoding up to ``window`` images ahead."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
    in_flight: deque = deque()
    try:
        for row in rows:
            in_flight.append((row, pool.submit(load_array, paths[row], size)))
            if len(in_flight) >= window:
                row_done, future = in_flight.popleft()
                yield (row_done, *future.result())
        while in_flight:
            row_done, future = in_flight.popleft()
            yield (row_done, *future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _Batcher:
    """Collects decoded images into a fixed-shape float32 batch and writes model outputs to their rows.

    The last, partial batch is padded to full size so the compiled predict
    function is never retraced for a new shape.
    """

    def __init__(self, model: keras.Model, batch_size: int, size: int, vectors: np.ndarray):
        self.model, self.run, self.vectors = model, None, vectors
        self.buffer = np.zeros((batch_size, size, size, 3), dtype=np.float32)
        self.rows: list[int] = []

    def add(self, row: int, image: np.ndarray) -> None:
        self.buffer[len(self.rows)] = image
        self.rows.append(row)
        if len(self.rows) == len(self.buffer):
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.run = self.run or model_runner(self.model)      # built only when something is left to embed
            self.vectors[self.rows] = self.run(self.buffer)[: len(self.rows)]
            self.rows.clear()

    def first_pending(self, default: int) -> int:
        """Lowest row still waiting for the model (every row before it is final)."""
        return self.rows[0] if self.rows else default


def embed_images(
    paths: Sequence,
    backbone,
    *,
    batch_size: int = 32,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> Embeddings:
    """Embed one image per path (None/NaN allowed) with ``backbone.model``; never drops a row.

    backbone: a :class:`samesame.image.backbones.Backbone` (uses .model, .input_size,
    .dim, .name, .weights). cache_dir: if given, finished chunks of CHUNK_SIZE
    rows are stored under cache_dir/<cache_key>/ so a rerun loads them and an
    interrupted run resumes at the first missing chunk. workers: decoding
    threads (default: :func:`default_workers`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    paths = list(paths)
    n, size = len(paths), backbone.input_size
    vectors = np.zeros((n, backbone.dim), dtype=np.float32)
    status = np.full(n, "", dtype=STATUS_DTYPE)
    cache = Path(cache_dir) / cache_key(paths, backbone) if cache_dir is not None else None
    keys = [_image_key(path) for path in paths] if cache is not None else []
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    chunks = _chunks_to_compute(cache, keys, vectors, status)
    unsaved = deque(chunks)
    todo_rows = (row for rows in chunks for row in rows)
    batcher = _Batcher(backbone.model, batch_size, size, vectors)
    workers = workers or default_workers()

    def save_finished(first_pending: int) -> None:
        while unsaved and unsaved[0].stop <= first_pending:
            rows = unsaved.popleft()
            if cache is not None:
                _save_chunk(_chunk_file(cache, rows), rows, vectors, status, keys[rows.start : rows.stop])

    todo = sum(map(len, chunks))
    with tqdm(total=n, initial=n - todo, desc=f"embed {backbone.name}", unit="img", disable=not progress) as bar:
        for row, image, row_status in _decoded(paths, todo_rows, size, workers, window=2 * batch_size):
            status[row] = row_status
            if row_status in USABLE_STATUSES:
                batcher.add(row, image)
            save_finished(batcher.first_pending(default=row + 1))
            bar.update(1)
        batcher.flush()
        save_finished(n)
    return Embeddings(vectors=vectors, status=status)


__all__ = [
    "CHUNK_SIZE",
    "STATUS_DTYPE",
    "Embeddings",
    "cache_key",
    "PRECISIONS",
    "configure_accelerator",
    "default_workers",
    "embed_images",
    "model_runner",
    "run_model",
]
