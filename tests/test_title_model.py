"""The fine-tuned e5 title encoder on toy groups: it learns, embeds any title, and saves/loads exactly."""

import json
import shutil
from dataclasses import asdict, replace

import numpy as np
import pytest

from samesame.core.neighbors import knn
from samesame.run.settings import defaults
from samesame.text import onnx_encoder
from samesame.text.batches import length_batches
from samesame.text import title_model
from samesame.text.title_model import BrokenEncoderError, TitleEncoder, embedding_precision, fitted_encoder

CFG = defaults()

WORDS = ["kopi", "teh", "gula", "sabun", "sepatu", "kaos", "tas", "jam", "lampu", "kabel", "botol", "piring"]
NOISE = ["promo", "murah", "ready", "stock", "original", "termurah", "grosir", "diskon", "best", "seller",
         "cod", "bisa", "gratis", "ongkir", "terlaris", "import"]


def _toy_groups(rng, n_groups=24, per_group=4):
    """A group = product word + model number; titles are buried in random seller noise."""
    titles, labels = [], []
    for g in range(n_groups):
        for _ in range(per_group):
            noise = rng.choice(NOISE, 6, replace=False)
            titles.append(" ".join([*noise[:3], WORDS[g % len(WORDS)], f"seri {g * 7 + 3}", *noise[3:]]))
            labels.append(g)
    return titles, np.array(labels)


def _neighbour_accuracy(emb, labels):
    _, idx = knn(emb, 2)
    return float(np.mean(labels[idx[:, 1]] == labels))


@pytest.fixture(scope="module")
def trained():
    titles, labels = _toy_groups(np.random.default_rng(0))
    cfg = replace(CFG.title_encoder, train_layers=1, epochs=6, batch_size=16, learning_rate=5e-4, margin_ramp_epochs=2,
                  cpu_precision="float32", train_precision="float32")   # Keras' numbers to rounding;
    # the int8 and bfloat16 paths have tests of their own
    before = TitleEncoder(cfg).embed(titles)
    encoder = TitleEncoder(cfg).fit(titles, labels, progress=False)
    return encoder, titles, labels, before


def test_fine_tuning_lowers_the_loss_and_separates_groups(trained):
    encoder, titles, labels, before = trained
    assert encoder.history[-1] < encoder.history[0]
    assert len(encoder.epoch_seconds) == 6
    after = encoder.embed(titles)
    np.testing.assert_allclose(np.linalg.norm(after, axis=1), 1.0, rtol=1e-5)
    assert _neighbour_accuracy(after, labels) > _neighbour_accuracy(before, labels)


def test_a_fitted_encoder_centres_its_embeddings_on_its_training_titles(trained):
    encoder, titles, _, _ = trained
    assert encoder.centre.shape == (384,)
    centre, encoder.centre = encoder.centre, None
    try:
        units = encoder.embed(titles)
    finally:
        encoder.centre = centre
    np.testing.assert_allclose(centre, units.mean(0), atol=1e-5)          # the mean of its training titles
    centred = encoder.embed(titles)
    expected = (units - centre) / np.linalg.norm(units - centre, axis=1, keepdims=True)
    np.testing.assert_allclose(centred, expected, atol=1e-5)
    assert abs(float(centred.mean(0) @ units.mean(0))) < abs(float(units.mean(0) @ units.mean(0)))


def test_save_load_round_trip_gives_identical_embeddings(trained, tmp_path):
    encoder, titles, _, _ = trained
    encoder.save(tmp_path / "title")
    loaded = TitleEncoder.load(tmp_path / "title")
    assert loaded.config == encoder.config
    np.testing.assert_allclose(loaded.embed(titles[:10]), encoder.embed(titles[:10]), atol=1e-6)


def test_onnx_runtime_embeds_like_keras_and_follows_a_refit(trained, monkeypatch):
    """On a CPU embed() runs in ONNX Runtime; it must give Keras' numbers, also after fit() changed the weights."""
    _, titles, labels, before = trained
    assert onnx_encoder.use_onnx()                  # requirements.txt pins onnxruntime: this machine uses it
    fresh = TitleEncoder(trained[0].config)
    np.testing.assert_allclose(fresh.embed(titles), before, atol=1e-5)    # pretrained: the session is built
    fresh.fit(titles, labels, progress=False)
    refitted = fresh.embed(titles)
    assert np.abs(refitted - before).max() > 0.01      # not the pretrained session's numbers
    monkeypatch.setattr(onnx_encoder, "use_onnx", lambda: False)
    fresh._memo.clear()
    np.testing.assert_allclose(fresh.embed(titles), refitted, atol=1e-5)


@pytest.mark.parametrize("train_layers", [1, 12])
def test_each_part_of_the_encoder_runs_in_onnx_runtime_like_keras(trained, train_layers, monkeypatch):
    """Fitting runs the frozen layers once and the trained ones for the class centres: both in ONNX Runtime on a
    CPU, with Keras' numbers; train_layers=12 leaves only the embedding block below (the gpu profile)."""
    encoder = TitleEncoder(replace(trained[0].config, train_layers=train_layers))
    encoder.upper.set_weights([w * 1.01 for w in encoder.upper.get_weights()])          # not the pretrained ones
    tokens = encoder.tokens(trained[1][:20])
    rows = np.arange(20)
    words, mask = tokens.padded(rows, encoder._word_vectors(tokens))
    onnx = {part: encoder._part(part) for part in ("lower", "upper", "all")}
    monkeypatch.setattr(onnx_encoder, "use_onnx", lambda: False)
    for part, x in (("lower", words), ("upper", onnx["lower"](words, mask)), ("all", words)):
        expected = encoder._part(part)(x, mask)
        assert not isinstance(encoder._part(part), onnx_encoder.OnnxEncoder)
        np.testing.assert_allclose(onnx[part](x, mask)[mask.astype(bool)] if part == "lower" else onnx[part](x, mask),
                                   expected[mask.astype(bool)] if part == "lower" else expected, atol=2e-4)


def test_int8_runs_on_any_cpu_keeps_the_ffn_outputs_float_and_stays_close_to_float32(trained):
    """The int8 path is the default only on CPUs with int8 units, but it must work (slowly) on any CPU."""
    import onnx

    from samesame.core.onnx_runtime import int8_model

    encoder, titles, labels, _ = trained
    int8 = TitleEncoder(replace(encoder.config, cpu_precision="int8"))
    int8.upper.set_weights(encoder.upper.get_weights())
    int8.centre = encoder.centre
    assert int8.precision == "int8"
    layers = {layer.name: layer for model in (encoder.lower, encoder.upper) for layer in model.layers}
    graph = int8_model(onnx_encoder.encoder_graph(encoder.weights.config, layers, title_model.MASKED),
                       keep_float=onnx_encoder.is_ffn_output)
    ops = [node.op_type for node in onnx.load_from_string(graph).graph.node]
    assert ops.count("MatMulInteger") + ops.count("DynamicQuantizeMatMul") == 12 * 5     # q k v, attention out, FFN in
    assert ops.count("MatMul") == 12 * 3                                                  # q.k, attention.v, FFN out
    cosine = np.sum(int8.embed(titles) * encoder.embed(titles), axis=1)
    assert cosine.max() < 1 - 1e-6                     # int8 arithmetic did run
    assert cosine.min() > 0.97 and np.median(cosine) > 0.99
    assert _neighbour_accuracy(int8.embed(titles), labels) >= _neighbour_accuracy(encoder.embed(titles), labels) - 0.05


def test_mixed_bfloat16_training_runs_on_any_cpu_learns_and_keeps_float32_weights():
    titles, labels = _toy_groups(np.random.default_rng(6), n_groups=12, per_group=4)
    cfg = replace(CFG.title_encoder, train_layers=1, epochs=6, batch_size=16, learning_rate=5e-4, margin_ramp_epochs=2,
                  train_precision="mixed_bfloat16", cpu_precision="float32")
    encoder = TitleEncoder(cfg)
    assert encoder.upper.get_layer("layer_11").q.dtype_policy.name == "mixed_bfloat16"
    before = encoder.embed(titles)
    encoder.fit(titles, labels, progress=False)
    assert encoder.history[-1] < encoder.history[2]           # falls once the ArcFace margin is fully ramped
    assert all(w.dtype == np.float32 for w in encoder.upper.get_weights())
    assert _neighbour_accuracy(encoder.embed(titles), labels) >= _neighbour_accuracy(before, labels)


def test_auto_training_precision_is_bfloat16_only_on_a_float32_cpu_run_with_bf16_units(monkeypatch):
    import keras

    for fast, expected in ((True, "mixed_bfloat16"), (False, None)):
        monkeypatch.setattr(title_model, "bf16_is_fast", lambda fast=fast: fast)
        assert title_model.training_policy("auto") == expected
    assert title_model.training_policy("float32") == "float32"
    monkeypatch.setattr(title_model, "bf16_is_fast", lambda: True)
    monkeypatch.setattr(keras.config, "dtype_policy", lambda: keras.DTypePolicy("mixed_float16"))
    assert title_model.training_policy("auto") is None              # a mixed_float16 run (a GPU) keeps its policy


def test_a_config_with_an_unknown_precision_is_refused(tmp_path):
    from samesame.text.title_model import _parse_config

    (tmp_path / "config.json").write_text(json.dumps({**asdict(CFG.title_encoder), "cpu_precision": "int4"}))
    with pytest.raises(ValueError, match="cpu_precision = 'int4'"):
        _parse_config(tmp_path / "config.json")


def test_auto_precision_is_int8_only_in_onnx_runtime_on_a_cpu_with_int8_units(monkeypatch):
    for fast, expected in ((True, "int8"), (False, "float32")):
        monkeypatch.setattr(title_model, "int8_is_fast", lambda fast=fast: fast)
        assert embedding_precision("auto") == expected
        assert (embedding_precision("int8"), embedding_precision("float32")) == ("int8", "float32")
    monkeypatch.setattr(onnx_encoder, "use_onnx", lambda: False)          # Keras (a GPU) has no int8 path
    assert embedding_precision("int8") == "float32"


def test_an_encoder_trained_on_int8_states_is_cached_apart_from_a_float32_one(tmp_path):
    titles, labels = _toy_groups(np.random.default_rng(5), n_groups=4, per_group=2)
    for precision in ("float32", "int8"):
        fitted_encoder(titles, labels, replace(CFG.title_encoder, train_layers=1, epochs=1, batch_size=8,
                                               cpu_precision=precision), tmp_path, progress=False)
    assert len(list(tmp_path.glob("title-e5-*"))) == 2


def test_embed_keeps_input_order_and_unseen_pieces(trained):
    encoder, titles, _, _ = trained
    new = ["ZZQX kata baru sekali 🙂", titles[0]]
    both = encoder.embed(new)
    np.testing.assert_allclose(both[1], encoder.embed([titles[0]])[0], atol=1e-5)
    assert np.all(np.isfinite(both))


def test_format_characters_and_compatibility_forms_embed_as_the_plain_title_and_nan_as_empty(trained):
    """A zero-width space between every letter split each word into letters for the encoder too."""
    encoder, titles, _, _ = trained
    hidden = "\u200b".join(titles[0]).replace("kopi", "ｋｏｐｉ\u00ad")
    np.testing.assert_allclose(encoder.embed([hidden, float("nan")]), encoder.embed([titles[0], ""]), atol=1e-6)


def test_length_batches_cover_every_row_once():
    lengths = np.random.default_rng(1).integers(3, 40, 1000)
    for rng in (None, np.random.default_rng(2)):
        rows = np.concatenate(list(length_batches(lengths, 64, rng)))
        assert sorted(rows.tolist()) == list(range(1000))


def test_train_layers_out_of_range_is_refused():
    with pytest.raises(ValueError, match="train_layers"):
        TitleEncoder(replace(CFG.title_encoder, train_layers=13))


def test_fitted_encoder_trains_once_then_loads_from_the_cache(tmp_path, monkeypatch):
    titles, labels = _toy_groups(np.random.default_rng(3), n_groups=6, per_group=3)
    cfg = replace(CFG.title_encoder, train_layers=1, epochs=1, batch_size=8)
    first = fitted_encoder(titles, labels, cfg, tmp_path, progress=False)
    monkeypatch.setattr(TitleEncoder, "fit", lambda *a, **k: pytest.fail("trained again despite the cache"))
    again = fitted_encoder(titles, labels, cfg, tmp_path, progress=False)
    assert again.history == first.history and len(again.epoch_seconds) == 1
    np.testing.assert_allclose(again.centre, first.centre, atol=1e-7)
    np.testing.assert_allclose(again.embed(titles[:4]), first.embed(titles[:4]), atol=1e-6)


UNTRAINED = replace(CFG.title_encoder, train_layers=1, epochs=0)   # no training: the cache tests cost no fitting


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    """A title-encoder cache folder written by fitted_encoder (untrained, so fast), and its titles and labels."""
    titles, labels = _toy_groups(np.random.default_rng(5), n_groups=4, per_group=2)
    cache = tmp_path_factory.mktemp("cache")
    fitted_encoder(titles, labels, UNTRAINED, cache, progress=False)
    (folder,) = cache.glob("title-e5-*")
    return folder, titles, labels


def test_a_truncated_cache_warns_with_its_path_then_is_retrained_and_overwritten(cached, tmp_path, monkeypatch):
    """A write killed midway used to leave a 96-byte upper.weights.h5 that failed every later fit."""
    folder, titles, labels = cached
    shutil.copytree(folder, tmp_path / folder.name)
    weights = tmp_path / folder.name / "upper.weights.h5"
    weights.write_bytes(weights.read_bytes()[:96])
    fits = []
    real_fit = TitleEncoder.fit
    monkeypatch.setattr(TitleEncoder, "fit", lambda self, *a, **k: fits.append(1) or real_fit(self, *a, **k))
    with pytest.warns(UserWarning, match=f"{weights}: unreadable title-encoder cache \\(OSError: .*truncated file"
                                         ".*training it again and overwriting it"):
        fitted_encoder(titles, labels, UNTRAINED, tmp_path, progress=False)
    assert fits == [1]
    assert weights.stat().st_size == (folder / "upper.weights.h5").stat().st_size     # whole again
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]                # no .tmp left over


@pytest.mark.parametrize("damage, file, reason", [
    (lambda f: shutil.rmtree(f), "", "the folder does not exist"),
    (lambda f: (f / "config.json").unlink(), "config.json", "FileNotFoundError"),
    (lambda f: (f / "config.json").write_text('{"train_layers": 1,'), "config.json", "JSONDecodeError"),
    (lambda f: (f / "config.json").write_text(json.dumps({**asdict(CFG.title_encoder), "train_layers": "1"})),
     "config.json",
     "train_layers = '1', expected int"),
    (lambda f: (f / "training.json").write_text("[]"), "training.json", "a JSON object with loss"),
    (lambda f: (f / "training.json").write_text('{"loss": []}'), "training.json", r"no \['epoch_seconds'\]"),
    (lambda f: (f / "upper.weights.h5").write_bytes(b"\x89HDF\r\n"), "upper.weights.h5", "OSError"),
], ids=["no-folder", "no-config", "config-not-json", "config-type", "training-list", "training-keys", "weights"])
def test_loading_a_broken_folder_names_the_file_and_the_fix(cached, tmp_path, damage, file, reason):
    folder = shutil.copytree(cached[0], tmp_path / "title_encoder")
    damage(folder)
    path = folder / file if file else folder
    with pytest.raises(BrokenEncoderError, match=f"{path}: cannot load the saved title encoder \\(.*{reason}"
                                                 f".*\\). Refit it \\(make fit\\), or delete {folder}"):
        TitleEncoder.load(folder)


@pytest.mark.parametrize("file, edit", [
    ("config.json", lambda text: text.replace('"max_len": ', '"max_len": 1')),       # 64 -> 164: other match sets
    ("training.json", lambda text: json.dumps({**json.loads(text), "loss": [0.5]})),
], ids=["max_len", "training"])
def test_a_file_edited_after_the_save_is_refused_with_the_fix(cached, tmp_path, file, edit):
    folder = shutil.copytree(cached[0], tmp_path / "title_encoder")
    (folder / file).write_text(edit((folder / file).read_text()))
    with pytest.raises(BrokenEncoderError, match=f"{folder / file}: cannot load the saved title encoder \(its bytes "
                                                 "differ from those saved with the encoder .*restore it as saved\). "
                                                 "Refit it \(make fit\)"):
        TitleEncoder.load(folder)


def test_a_folder_saved_without_a_manifest_is_refused(cached, tmp_path):
    folder = shutil.copytree(cached[0], tmp_path / "title_encoder")
    (folder / "manifest.json").unlink()
    with pytest.raises(BrokenEncoderError, match=f"{folder / 'manifest.json'}: .*FileNotFoundError.*Refit it"):
        TitleEncoder.load(folder)


def test_a_save_killed_midway_leaves_the_old_folder_and_the_next_save_works(cached, tmp_path, monkeypatch):
    folder = shutil.copytree(cached[0], tmp_path / "title_encoder")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    encoder = TitleEncoder.load(folder)

    def killed(path):
        path.write_bytes(b"\x89HDF" + bytes(92))   # the 96 bytes a killed write left
        raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(encoder.upper, "save_weights", killed)
    with pytest.raises(KeyboardInterrupt):
        encoder.save(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    monkeypatch.undo()
    encoder.history = [1.0]
    encoder.save(folder)                             # the stray title_encoder.tmp does not get in the way
    assert json.loads((folder / "training.json").read_text())["loss"] == [1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["title_encoder"]
