"""Fine-tuning: model surgery, frozen statistics, loss going down, selection blind to test, storage, reruns."""

from dataclasses import replace

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from samesame.image.backbones import load_backbone
from samesame.image.embed import embed_images
from samesame.image.finetune import finetune_grid, stored_finetune
from samesame.image.finetune.files import SUMMARY_FILE, clear_models
from samesame.image.finetune.models import FrozenStatistics, build_models, cut_layer, split_backbone, unfrozen_layers
from samesame.image.finetune.train import holdout_groups, train_epochs
from samesame.image.finetune.views import augment, image_views
from samesame.run.settings import defaults

SIZE = 64
COLOURS = [(220, 30, 30), (30, 160, 40), (40, 60, 220), (230, 200, 20), (150, 40, 180), (20, 190, 200)]


@pytest.fixture(scope="module")
def lite():
    return load_backbone("efficientnet_lite0", input_size=SIZE)


def shape_image(group: int, variant: int) -> Image.Image:
    """32x32 coloured shape: group = (shape, colour); variant moves and resizes it a little."""
    rng = np.random.default_rng([group, variant])
    img = Image.new("RGB", (32, 32), tuple(int(c) for c in rng.integers(200, 256, 3)))
    draw = ImageDraw.Draw(img)
    x, y, r = *rng.integers(12, 20, 2), int(rng.integers(7, 11))
    box = (x - r, y - r, x + r, y + r)
    colour = COLOURS[group % len(COLOURS)]
    [draw.ellipse, draw.rectangle, lambda b, fill: draw.polygon([(b[0], b[3]), ((b[0] + b[2]) // 2, b[1]), (b[2], b[3])],
                                                                fill=fill)][group // len(COLOURS) % 3](box, fill=colour)
    return img


def listings(folder, groups: range, per_group: int = 3) -> pd.DataFrame:
    rows = []
    for g in groups:
        for v in range(per_group):
            path = folder / f"g{g}_{v}.png"
            shape_image(g, v).save(path)
            rows.append({"posting_id": f"p{g}_{v}", "image_path": str(path), "label_group": 1000 + g})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    train = listings(folder, range(0, 12))
    train.loc[len(train)] = {"posting_id": "no_image", "image_path": None, "label_group": 1000}  # kept, never trained on
    return {"train": train, "test": listings(folder, range(12, 18))}


SETTINGS = replace(defaults().finetune, image_size=SIZE, unfreeze=("layer",), epochs=(1, 2), views=2, batch_size=8,
                   lr=3e-3, selection_fraction=0.3)
GRID = dict(settings=SETTINGS, seed=0, progress=False)


@pytest.fixture(scope="module")
def grid(splits, tmp_path_factory):
    models = tmp_path_factory.mktemp("run") / "models"
    return finetune_grid(splits, models_dir=models, **GRID), models


def trainable_layer_names(model: keras.Model) -> set[str]:
    return {w.path.split("/")[-2] for w in model.trainable_weights}


@pytest.mark.parametrize("mode", ["layer", "module"])
def test_unfreeze_modes_train_exactly_the_intended_layers(lite, mode):
    trainer, _, _ = build_models(split_backbone(lite.model, "stage6_block0_expand_conv")[1],
                                 unfrozen_layers(lite.model, mode), "softmax", 4, arcface_scale=30, arcface_margin=0.3)
    top = {"head_conv", "head_conv_bn"}
    stage6 = {"stage6_block0_expand_conv", "stage6_block0_expand_conv_bn", "stage6_block0_dwconv",
              "stage6_block0_dwconv_bn", "stage6_block0_project_conv", "stage6_block0_project_conv_bn"}
    expected = top | {"neck_bn", "softmax"} | (stage6 if mode == "module" else set())
    assert trainable_layer_names(trainer) == expected


def test_cut_is_the_first_unfrozen_layer_and_split_is_exact(lite):
    assert cut_layer(lite.model, ["layer"]) == "head_conv"
    assert cut_layer(lite.model, ["layer", "module"]) == "stage6_block0_expand_conv"
    trunk, tail = split_backbone(lite.model, "head_conv")
    x = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype(np.float32)
    np.testing.assert_allclose(tail(trunk(x)), lite.model(x), atol=1e-5)
    with pytest.raises(ValueError, match="unfreeze"):
        unfrozen_layers(lite.model, "everything")


@pytest.mark.parametrize("head", ["softmax", "arcface"])
def test_training_reduces_loss_and_keeps_frozen_parts(lite, head):
    trunk, tail = split_backbone(lite.model, "stage6_block0_expand_conv")
    images = np.stack([np.asarray(shape_image(g, v).resize((SIZE, SIZE)), np.float32)
                       for g in range(4) for v in range(4)])
    views = np.asarray(trunk(images))[:, None]  # (16, 1, H, W, C)
    labels = np.repeat(np.arange(4), 4)
    keras.utils.set_random_seed(0)
    trainer, embedder, arcface = build_models(tail, unfrozen_layers(lite.model, "layer"), head, 4,
                                              arcface_scale=16, arcface_margin=0.2)
    trainer.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
    inner = embedder.get_layer("tail").layer
    frozen = inner.get_layer("stage6_block0_project_conv").get_weights()[0].copy()
    bn = inner.get_layer("head_conv_bn")
    moving, gamma = bn.moving_mean.numpy().copy(), bn.gamma.numpy().copy()
    losses = [s["loss"] for _, s in train_epochs(trainer, arcface, views, labels, epochs=6, batch_size=8, seed=0,
                                                 margin=0.2, margin_ramp_epochs=0)]
    assert losses[-1] < 0.5 * losses[0]
    np.testing.assert_array_equal(inner.get_layer("stage6_block0_project_conv").get_weights()[0], frozen)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), moving)  # statistics stay pretrained
    assert not np.allclose(bn.gamma.numpy(), gamma)  # while the unfrozen BN's scale trains


def test_augment_is_seeded_and_first_view_is_clean():
    image = np.asarray(shape_image(0, 0).resize((SIZE, SIZE)))
    a = augment(image, np.random.default_rng(1))
    assert a.shape == image.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, augment(image, np.random.default_rng(1)))
    assert not np.array_equal(a, image)
    views = image_views(image, 3, seed=0, row=5)
    np.testing.assert_array_equal(views[0], image)
    assert not np.array_equal(views[1], views[2])


def test_holdout_is_whole_train_groups(splits):
    held = holdout_groups(splits["train"], 0.3, seed=0)
    groups = splits["train"]["label_group"]
    assert held.any() and not held.all()
    assert not set(groups[held]) & set(groups[~held])
    with pytest.raises(ValueError, match="selection_fraction"):
        holdout_groups(splits["train"].iloc[:3], 0.3, seed=0)  # a single group cannot be split


def test_grid_table_and_best(grid, splits):
    result, _ = grid
    table = result.table
    assert list(table["model"]) == ["efficientnet_lite0-pretrained"] + [
        f"efficientnet_lite0-{h}-layer-e{e}" for h in ("softmax", "arcface") for e in (1, 2)]
    assert {"head", "unfreeze", "epochs", "train_mean_f1", "test_mean_f1", "selection_mean_f1"} <= set(table.columns)
    assert result.best["selection_mean_f1"] == table["selection_mean_f1"].max()
    assert set(result.curves["config"]) == {"softmax-layer", "arcface-layer"}
    metrics = result.metrics()
    assert metrics["best"]["model"] == result.best["model"] and len(metrics["rows"]) == len(table)
    fit_groups = set(result.info["fit_groups"])              # what the matcher fit must not tune on
    assert len(fit_groups) == result.info["n_fit_groups"] and fit_groups <= set(splits["train"]["label_group"])
    assert not fit_groups & set(splits["test"]["label_group"])


def test_listing_without_image_is_kept_with_a_zero_vector(grid, splits):
    result, _ = grid
    emb = result.best_signal.embeddings["train"]
    assert len(emb.vectors) == len(splits["train"])
    assert emb.status[-1] == "missing" and not emb.vectors[-1].any()
    assert result.info["n_train_unusable"] == 1  # counted, not trained on


def test_selection_ignores_test_labels_and_reruns_reproduce(grid, splits, tmp_path):
    result, models = grid
    shuffled = splits["test"].assign(label_group=np.random.default_rng(0).permutation(splits["test"]["label_group"]))
    again = finetune_grid({"train": splits["train"], "test": shuffled}, models_dir=tmp_path / "models", **GRID)
    assert again.best["model"] == result.best["model"]
    pd.testing.assert_series_equal(again.table["selection_mean_f1"], result.table["selection_mean_f1"])
    pd.testing.assert_series_equal(again.table["train_mean_f1"], result.table["train_mean_f1"])
    assert not again.table["test_mean_f1"].equals(result.table["test_mean_f1"])  # the test labels did go in
    for name in result.table["model"]:  # same seed, same vectors
        np.testing.assert_allclose(stored_finetune(tmp_path / "models").embeddings(name)[1].embeddings["train"].vectors,
                                   stored_finetune(models).embeddings(name)[1].embeddings["train"].vectors, atol=1e-5)


def test_saved_models_reload_and_give_the_same_vectors(grid, splits):
    result, models = grid
    stored = stored_finetune(models)
    name, signal = stored.embeddings()
    assert name == result.best["model"]
    np.testing.assert_array_equal(signal.embeddings["test"].vectors, result.best_signal.embeddings["test"].vectors)
    fine = result.table["model"].iloc[-1]
    backbone = stored.backbone(fine)
    fresh = embed_images(splits["test"]["image_path"].tolist(), backbone, batch_size=8, progress=False)
    np.testing.assert_allclose(fresh.vectors, stored.embeddings(fine)[1].embeddings["test"].vectors, atol=1e-4)
    assert isinstance(keras.saving.load_model(stored.embedder_file(fine)).get_layer("tail"), FrozenStatistics)
    with pytest.raises(FileNotFoundError, match="stored"):
        stored.embeddings("no-such-model")


def test_bad_splits_are_rejected(splits):
    with pytest.raises(ValueError, match="label_group"):
        finetune_grid({"train": splits["train"], "test": splits["test"].drop(columns="label_group")}, **GRID)
    with pytest.raises(ValueError, match="'test'"):
        finetune_grid({"train": splits["train"]}, **GRID)


def test_clear_models_removes_only_an_earlier_grid(tmp_path):
    (tmp_path / "old-row").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / SUMMARY_FILE).write_text('{"rows": [{"model": "old-row"}], "best": {"model": "old-row"}}')
    clear_models(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_too_few_images_skips_with_the_reason(splits, tmp_path):
    few = splits["train"].copy()
    few.loc[few.index[6:], "image_path"] = None  # two groups keep their images: nothing worth learning
    result = finetune_grid({"train": few, "test": splits["test"]}, **GRID)
    assert result.skipped and "only" in result.skipped and result.table.empty and result.best == {}
    assert result.metrics()["skipped"] == result.skipped
