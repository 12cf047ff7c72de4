"""Streaming embeddings with a tiny Keras model standing in for a real backbone."""

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from samesame.image import embed
from samesame.image.embed import Embeddings, cache_key, configure_accelerator, embed_images, run_model
from samesame.image.images import load_array

SIZE = 16


@dataclass
class FakeBackbone:
    """Same fields as samesame.image.backbones.Backbone."""

    model: object
    name: str = "tiny"
    input_size: int = SIZE
    dim: int = 4
    weights: str = "seed0"


class CountingModel:
    """Delegates predict_on_batch and counts it; optionally dies on call number ``fail_on`` (a killed run)."""

    def __init__(self, model, fail_on: int | None = None):
        self.model, self.fail_on, self.calls = model, fail_on, 0

    def predict_on_batch(self, batch):
        self.calls += 1
        if self.calls == self.fail_on:
            raise KeyboardInterrupt("simulated kill")
        return self.model.predict_on_batch(batch)


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )


def _images(folder, n, start=0):
    """n distinct small JPEGs (different colour and a moving square) so every vector differs."""
    paths = []
    for i in range(start, start + n):
        img = Image.new("RGB", (40, 40), (20 * i % 256, 255 - 15 * i % 256, 90))
        img.paste((255, 255, 255), (i % 30, i % 30, i % 30 + 10, i % 30 + 10))
        path = folder / f"{i}.jpg"
        img.save(path, quality=95)
        paths.append(path)
    return paths


def _expected(model, paths):
    return run_model(model, np.stack([load_array(p, SIZE)[0] for p in paths]).astype(np.float32))


def test_good_and_bad_rows_in_order(tmp_path, tiny_model):
    good = _images(tmp_path, 5)
    (tmp_path / "empty.jpg").touch()
    paths = [good[0], None, good[1], tmp_path / "nope.jpg", good[2], tmp_path / "empty.jpg", good[3], good[4]]
    counting = CountingModel(tiny_model)
    result = embed_images(paths, FakeBackbone(counting), batch_size=2, progress=False, workers=2)

    assert isinstance(result, Embeddings)
    assert result.vectors.dtype == np.float32 and result.vectors.shape == (8, 4)
    assert result.status.tolist() == ["ok", "missing", "ok", "missing", "ok", "empty", "ok", "ok"]
    assert result.ok.tolist() == [True, False, True, False, True, False, True, True]
    assert result.counts["ok"] == 5 and result.counts["missing"] == 2 and result.counts["empty"] == 1
    np.testing.assert_allclose(result.vectors[result.ok], _expected(tiny_model, good), rtol=1e-5, atol=1e-6)
    assert not result.vectors[~result.ok].any()
    assert counting.calls == 3  # 5 usable images in batches of 2; unusable ones never reach the model


def test_rows_without_images_cost_no_model_calls(tiny_model):
    counting = CountingModel(tiny_model)
    result = embed_images([None] * 50, FakeBackbone(counting), progress=False)
    assert counting.calls == 0 and result.counts["missing"] == 50 and not result.vectors.any()


def test_no_paths_gives_empty_embeddings(tiny_model):
    result = embed_images([], FakeBackbone(tiny_model), progress=False)
    assert result.vectors.shape == (0, 4) and result.status.shape == (0,)


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(embed, "CHUNK_SIZE", 4)


def test_rerun_loads_cache_without_model_calls(tmp_path, tiny_model, small_chunks):
    paths = _images(tmp_path, 10) + [None]
    first = embed_images(paths, FakeBackbone(tiny_model), batch_size=3, cache_dir=tmp_path / "cache", progress=False)
    assert len(list((tmp_path / "cache").glob("*/chunk_*.npz"))) == 3

    counting = CountingModel(tiny_model)
    again = embed_images(paths, FakeBackbone(counting), batch_size=3, cache_dir=tmp_path / "cache", progress=False)
    assert counting.calls == 0
    np.testing.assert_array_equal(again.vectors, first.vectors)
    np.testing.assert_array_equal(again.status, first.status)


def test_deleted_chunk_is_recomputed_alone(tmp_path, tiny_model, small_chunks):
    paths = _images(tmp_path, 12)
    first = embed_images(paths, FakeBackbone(tiny_model), batch_size=2, cache_dir=tmp_path / "cache", progress=False)
    (chunk,) = (tmp_path / "cache").glob("*/chunk_00001.npz")
    chunk.unlink()

    counting = CountingModel(tiny_model)
    again = embed_images(paths, FakeBackbone(counting), batch_size=2, cache_dir=tmp_path / "cache", progress=False)
    assert counting.calls == 2  # only rows 4..7
    assert chunk.exists()
    np.testing.assert_allclose(again.vectors, first.vectors, rtol=1e-5, atol=1e-6)


def test_killed_run_resumes_from_last_finished_chunk(tmp_path, tiny_model, small_chunks):
    paths = _images(tmp_path, 12)
    # Batches of 3 straddle chunks of 4: the kill on batch 3 (rows 6..8) leaves rows 6, 7 unembedded,
    # so chunk 1 (rows 4..7) must not have been written yet.
    killed = CountingModel(tiny_model, fail_on=3)
    with pytest.raises(KeyboardInterrupt):
        embed_images(paths, FakeBackbone(killed), batch_size=3, cache_dir=tmp_path / "cache", progress=False)
    saved = sorted(p.name for p in (tmp_path / "cache").glob("*/*"))
    assert saved == ["chunk_00000.npz"]

    resumed = CountingModel(tiny_model)
    result = embed_images(paths, FakeBackbone(resumed), batch_size=3, cache_dir=tmp_path / "cache", progress=False)
    assert resumed.calls == 3  # rows 4..11
    np.testing.assert_allclose(result.vectors, _expected(tiny_model, paths), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("damage", [
    lambda data: b"not a zip",                 # ValueError
    lambda data: b"",                          # EOFError: the write was killed before any byte
    lambda data: data[: len(data) // 2],       # BadZipFile: cut short
    lambda data: data[:-10],                   # BadZipFile: the end of the central directory lost
], ids=["garbage", "empty", "half", "tail-lost"])
def test_corrupt_chunk_warns_with_its_path_and_is_recomputed(tmp_path, tiny_model, small_chunks, damage):
    paths = _images(tmp_path, 4)
    first = embed_images(paths, FakeBackbone(tiny_model), cache_dir=tmp_path / "cache", progress=False)
    (chunk,) = (tmp_path / "cache").glob("*/chunk_00000.npz")
    chunk.write_bytes(damage(chunk.read_bytes()))
    counting = CountingModel(tiny_model)
    with pytest.warns(UserWarning, match=f"{chunk}: unreadable embedding-cache chunk .*recomputing its 4 rows"):
        again = embed_images(paths, FakeBackbone(counting), cache_dir=tmp_path / "cache", progress=False)
    assert counting.calls == 1
    np.testing.assert_allclose(again.vectors, first.vectors, rtol=1e-5, atol=1e-6)
    with np.load(chunk) as rewritten:                     # overwritten with the recomputed rows
        np.testing.assert_array_equal(rewritten["vectors"], again.vectors)


def test_a_chunk_of_the_wrong_shape_warns_and_is_recomputed(tmp_path, tiny_model, small_chunks):
    paths = _images(tmp_path, 4)
    embed_images(paths, FakeBackbone(tiny_model), cache_dir=tmp_path / "cache", progress=False)
    (chunk,) = (tmp_path / "cache").glob("*/chunk_00000.npz")
    np.savez(chunk, vectors=np.zeros((3, 4), np.float32), status=np.array(["ok"] * 3))
    counting = CountingModel(tiny_model)
    with pytest.warns(UserWarning, match=f"{chunk}: embedding-cache chunk holds vectors \\(3, 4\\)"):
        embed_images(paths, FakeBackbone(counting), cache_dir=tmp_path / "cache", progress=False)
    assert counting.calls == 1


def test_a_chunk_full_of_nan_warns_and_is_recomputed(tmp_path, tiny_model, small_chunks):
    paths = _images(tmp_path, 4)
    embed_images(paths, FakeBackbone(tiny_model), cache_dir=tmp_path / "cache", progress=False)
    (chunk,) = (tmp_path / "cache").glob("*/chunk_00000.npz")
    np.savez(chunk, vectors=np.full((4, 4), np.nan, np.float32), status=np.array(["ok"] * 4))
    with pytest.warns(UserWarning, match=f"{chunk}: embedding-cache chunk holds NaN or infinite vectors"):
        again = embed_images(paths, FakeBackbone(tiny_model), cache_dir=tmp_path / "cache", progress=False)
    assert np.isfinite(again.vectors).all()


def test_a_folder_in_a_chunks_place_is_replaced_by_the_chunk(tmp_path, tiny_model, small_chunks):
    paths = _images(tmp_path, 4)
    embed_images(paths, FakeBackbone(tiny_model), cache_dir=tmp_path / "cache", progress=False)
    (chunk,) = (tmp_path / "cache").glob("*/chunk_00000.npz")
    chunk.unlink()
    chunk.mkdir()
    with pytest.warns(UserWarning, match=f"{chunk}: unreadable embedding-cache chunk"):
        embed_images(paths, FakeBackbone(tiny_model), cache_dir=tmp_path / "cache", progress=False)
    assert chunk.is_file()


@pytest.mark.parametrize("tamper", [
    lambda vectors, status: (np.zeros_like(vectors), status),           # a chunk of zeros: every image "blank"
    lambda vectors, status: (vectors[::-1], status[::-1]),              # its rows reordered: images swapped
], ids=["zeros", "permuted"])
def test_a_chunk_whose_rows_were_changed_is_recomputed_with_a_warning_never_used(tmp_path, tiny_model, small_chunks,
                                                                                  tamper):
    paths = _images(tmp_path, 4)
    first = embed_images(paths, FakeBackbone(tiny_model), cache_dir=tmp_path / "cache", progress=False)
    (chunk,) = (tmp_path / "cache").glob("*/chunk_00000.npz")
    with np.load(chunk) as saved:
        vectors, status = tamper(saved["vectors"], saved["status"])
        np.savez(chunk, vectors=vectors, status=status, fingerprint=saved["fingerprint"])
    counting = CountingModel(tiny_model)
    with pytest.warns(UserWarning, match=f"{chunk}: embedding-cache chunk does not match the fingerprint it was "
                                         "written with .*recomputing its 4 rows and overwriting it"):
        again = embed_images(paths, FakeBackbone(counting), cache_dir=tmp_path / "cache", progress=False)
    assert counting.calls == 1
    np.testing.assert_allclose(again.vectors, first.vectors, rtol=1e-5, atol=1e-6)


def test_save_chunk_replaces_atomically(tmp_path, monkeypatch):
    """A kill during the write leaves the previous chunk (or none), never a partial one."""
    path = tmp_path / "chunk_00000.npz"
    vectors, status = np.ones((4, 2), np.float32), np.array(["ok"] * 4)
    keys = [f"img{i}.jpg\t-" for i in range(4)]
    embed._save_chunk(path, range(0, 4), vectors, status, keys)

    def killed(file, **arrays):
        Path(file).write_bytes(b"PK partial")
        raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(embed.np, "savez", killed)
    with pytest.raises(KeyboardInterrupt):
        embed._save_chunk(path, range(0, 4), vectors * 2, status, keys)
    with np.load(path) as kept:
        np.testing.assert_array_equal(kept["vectors"], vectors)


def test_cache_key_tracks_data_and_backbone(tmp_path, tiny_model):
    paths = _images(tmp_path, 3)
    backbone = FakeBackbone(tiny_model)
    key = cache_key(paths, backbone)
    assert key == cache_key(list(paths), FakeBackbone(tiny_model))
    assert key != cache_key(paths[:2], backbone)
    assert key != cache_key(paths, FakeBackbone(tiny_model, weights="other"))
    assert key != cache_key(paths, FakeBackbone(tiny_model, input_size=SIZE * 2))
    Image.new("RGB", (50, 50)).save(paths[1])  # the image file changed on disk
    assert key != cache_key(paths, backbone)


def test_configure_accelerator_without_gpu_keeps_float32(monkeypatch):
    monkeypatch.setattr(embed.tf.config, "list_physical_devices", lambda kind=None: [])
    assert configure_accelerator("auto") == "cpu (float32)"
    assert keras.mixed_precision.global_policy().name == "float32"


def test_configure_accelerator_forces_a_policy_and_refuses_an_unknown_one(monkeypatch):
    monkeypatch.setattr(embed.tf.config, "list_physical_devices", lambda kind=None: [])
    try:
        assert configure_accelerator("mixed_float16") == "cpu (mixed_float16)"      # CI's GPU-path test
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    with pytest.raises(ValueError, match="precision must be one of"):
        configure_accelerator("fp16")


def test_configure_accelerator_with_gpu_sets_mixed_precision(monkeypatch):
    gpu = embed.tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    monkeypatch.setattr(embed.tf.config, "list_physical_devices", lambda kind=None: [gpu])
    monkeypatch.setattr(embed.tf.config.experimental, "set_memory_growth", lambda device, enable: None)
    monkeypatch.setattr(embed.tf.config.experimental, "get_device_details", lambda device: {"device_name": "FakeGPU"})
    try:
        assert configure_accelerator("auto") == "gpu: FakeGPU (mixed_float16)"
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
        assert configure_accelerator("float32") == "gpu: FakeGPU (float32)"
        assert keras.mixed_precision.global_policy().name == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_mixed_precision_model_still_gives_float32(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.GlobalAveragePooling2D()])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    result = embed_images(_images(tmp_path, 2), FakeBackbone(model, dim=3), progress=False)
    assert result.vectors.dtype == np.float32 and result.vectors.any()
