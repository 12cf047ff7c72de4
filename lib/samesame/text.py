"""Title signals: normalisation, TF-IDF embeddings, a learned ArcFace title embedding, unit conflicts.

Shopee titles are noisy Indonesian/English strings: the same product is written
"200gr", "200 GR" or "200 gram". Normalising numbers and units first lets TF-IDF
(and the learned model on top of it) see them as the same tokens. Quantities are
also a strong *negative* signal: two titles that both state a weight in grams and
disagree (200 gr vs 400 gr) are usually different variants, hence
:func:`quantities` / :func:`unit_conflict`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize
from tqdm.auto import tqdm

from .neighbors import l2_normalize

# Spelling variants -> one canonical unit token (whole tokens only, after number/unit split).
UNITS = {
    "g": "gr", "gr": "gr", "grm": "gr", "gram": "gr", "grams": "gr", "gramm": "gr", "gsm": "gr",
    "kg": "kg", "kgs": "kg", "kilo": "kg", "kilogram": "kg",
    "mg": "mg", "ml": "ml", "mls": "ml", "mili": "ml", "liter": "l", "litre": "l", "ltr": "l", "lt": "l", "l": "l",
    "pcs": "pcs", "pc": "pcs", "pieces": "pcs", "piece": "pcs", "biji": "pcs", "buah": "pcs",
    "cm": "cm", "mm": "mm", "m": "m", "meter": "m", "inch": "inch", "inchi": "inch", "in": "inch",
    "gb": "gb", "tb": "tb", "mah": "mah", "w": "w", "watt": "w", "v": "v", "volt": "v",
    "oz": "oz", "ply": "ply", "pack": "pack", "pak": "pack", "sachet": "sachet", "sch": "sachet",
}
# Units whose stated amount identifies the variant (weights, volumes, counts, capacities).
CONFLICT_UNITS = frozenset({"gr", "kg", "mg", "ml", "l", "pcs", "gb", "tb", "mah", "w", "oz", "inch", "ply"})

_NUM_ALPHA = re.compile(r"(?<=\d)(?=[^\W\d_])|(?<=[^\W\d_])(?=\d)")
_DECIMAL_COMMA = re.compile(r"(?<=\d),(?=\d)")
_NON_WORD = re.compile(r"[^\w.]+|(?<!\d)\.|\.(?!\d)|_")
_QUANTITY = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?) ([^\W\d_]+)")


def normalize_title(title: str) -> str:
    """Lowercase, NFKC-fold, split numbers from letters and unify unit spellings.

    ``"Susu 200GR x2 (1,5 Kg)"`` -> ``"susu 200 gr x 2 1.5 kg"``: the variants a
    seller may type become identical tokens, so TF-IDF counts them as one word.
    """
    text = unicodedata.normalize("NFKC", str(title)).lower()
    text = _DECIMAL_COMMA.sub(".", text)
    text = _NUM_ALPHA.sub(" ", text)
    tokens = _NON_WORD.sub(" ", text).split()
    return " ".join(UNITS.get(t, t) for t in tokens)


def normalize_titles(titles: Sequence[str]) -> list[str]:
    """:func:`normalize_title` over a column (keeps the order and the length)."""
    return [normalize_title(t) for t in titles]


def quantities(normalized: str) -> dict[str, frozenset[float]]:
    """Amounts stated per conflict-relevant unit in a normalised title, e.g. ``{"gr": {200.0}}``."""
    found: dict[str, set[float]] = {}
    for number, unit in _QUANTITY.findall(normalized):
        if unit in CONFLICT_UNITS:
            found.setdefault(unit, set()).add(float(number))
    return {u: frozenset(v) for u, v in found.items()}


def unit_conflict(a: dict[str, frozenset[float]], b: dict[str, frozenset[float]]) -> bool:
    """True when both titles state amounts in a common unit and share none of them (200 gr vs 400 gr)."""
    return any(not (a[u] & b[u]) for u in a.keys() & b.keys())


@dataclass(frozen=True)
class TfidfConfig:
    """Word + char n-gram TF-IDF; each part L2-normalised, then weighted and concatenated."""

    word_weight: float = 1.0
    char_weight: float = 0.0
    char_ngrams: tuple[int, int] = (2, 4)
    binary: bool = True
    max_features: int | None = None


def tfidf_embeddings(titles: Sequence[str], config: TfidfConfig = TfidfConfig()) -> sp.csr_matrix:
    """L2-normalised sparse TF-IDF of normalised titles, fit on the given pool itself (unsupervised).

    Fitting on the searched pool is what the competition allowed on its test set:
    document frequencies come from the very listings being matched.
    """
    vectorizers = _tfidf_vectorizers(config)
    docs = normalize_titles(titles)
    return _stack_parts([v.fit_transform(docs) for v in vectorizers.values()], vectorizers, config)


def _tfidf_vectorizers(config: TfidfConfig) -> dict[str, TfidfVectorizer]:
    parts = {}
    if config.word_weight > 0:
        parts["word"] = TfidfVectorizer(token_pattern=r"\S+", binary=config.binary, max_features=config.max_features)
    if config.char_weight > 0:
        parts["char"] = TfidfVectorizer(analyzer="char_wb", ngram_range=config.char_ngrams, binary=config.binary,
                                        max_features=config.max_features, dtype=np.float32)
    if not parts:
        raise ValueError("TfidfConfig needs word_weight > 0 or char_weight > 0")
    return parts


def _stack_parts(mats, vectorizers, config: TfidfConfig) -> sp.csr_matrix:
    weights = {"word": config.word_weight, "char": config.char_weight}
    scaled = [normalize(m) * np.sqrt(weights[name]) for m, name in zip(mats, vectorizers)]
    return normalize(sp.hstack(scaled, format="csr")).astype(np.float32)


# ---------------------------------------------------------------- learned title embedding


@dataclass(frozen=True)
class ArcFaceConfig:
    """Hyper-parameters of the learned title embedding (defaults: about a minute for 14k titles on 2 cores)."""

    svd_dim: int = 384
    hidden: int = 768
    dim: int = 256
    margin: float = 0.4
    scale: float = 30.0
    epochs: int = 12
    batch_size: int = 256
    learning_rate: float = 2e-3
    dropout: float = 0.3
    max_features: int = 60000
    seed: int = 0


class TitleEncoder:
    """MLP over (SVD-compressed) word + char TF-IDF, trained with an ArcFace head on label groups.

    ArcFace (additive angular margin) pulls a group's titles towards a class centre
    and pushes other groups at least ``margin`` radians away, so cosine distance
    between embeddings of *unseen* groups becomes a "same product" score that
    knows which words matter. The TF-IDF vocabulary, the SVD and the network only
    ever see the titles passed to :meth:`fit` (train groups); :meth:`embed` maps any
    titles into that space. SVD keeps the network small enough for 2 CPU cores.
    """

    def __init__(self, config: ArcFaceConfig = ArcFaceConfig()):
        self.config = config
        self.vectorizers: dict[str, TfidfVectorizer] = {}
        self.svd: TruncatedSVD | None = None
        self.model = None
        self.history: list[float] = []

    def features(self, titles: Sequence[str], fit: bool = False) -> np.ndarray:
        """The network's input: unit-length SVD of unit-length word + char TF-IDF (float32)."""
        docs = normalize_titles(titles)
        if fit:
            half = self.config.max_features // 2
            self.vectorizers = {
                "word": TfidfVectorizer(token_pattern=r"\S+", binary=True, max_features=half, dtype=np.float32),
                "char": TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), binary=True, max_features=half,
                                        dtype=np.float32),
            }
            self.svd = TruncatedSVD(self.config.svd_dim, algorithm="randomized", n_iter=4,
                                    random_state=self.config.seed)
        mats = [(v.fit_transform(docs) if fit else v.transform(docs)) for v in self.vectorizers.values()]
        x = normalize(sp.hstack([normalize(m) for m in mats], format="csr"))
        return l2_normalize(self.svd.fit_transform(x) if fit else self.svd.transform(x))

    def fit(self, titles: Sequence[str], labels: Sequence, progress: bool = True) -> "TitleEncoder":
        """Train on titles with their label_group (train groups only); fixed seeds."""
        import keras

        from .arcface import ArcFace  # the shared, tested head (images use it too)

        cfg = self.config
        keras.utils.set_random_seed(cfg.seed)
        x = self.features(titles, fit=True)
        _, y = np.unique(np.asarray(labels), return_inverse=True)
        y = y.astype(np.int32)
        self.model = _build_encoder(x.shape[1], cfg)
        emb_in = keras.Input((x.shape[1],))
        lab_in = keras.Input((), dtype="int32")
        logits = ArcFace(int(y.max()) + 1, cfg.scale, cfg.margin)([self.model(emb_in), lab_in])
        trainer = keras.Model([emb_in, lab_in], logits)
        trainer.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        fit = trainer.fit([x, y], y, epochs=cfg.epochs, batch_size=cfg.batch_size, shuffle=True, verbose=0,
                          callbacks=[_TqdmEpochs(cfg.epochs, progress)])
        self.history = [float(v) for v in fit.history["loss"]]
        return self

    def embed(self, titles: Sequence[str], batch_size: int = 4096) -> np.ndarray:
        """Unit-length float32 embeddings (n, dim) of any titles."""
        if self.model is None:
            raise RuntimeError("TitleEncoder.embed called before fit(): train it on train groups first")
        x = self.features(titles)
        return l2_normalize(self.model.predict(x, batch_size=batch_size, verbose=0))

    def save(self, folder) -> "Path":
        """``config.json`` + ``encoder.keras`` (the network) + ``features.joblib`` (fitted TF-IDF and SVD)."""
        import json
        from dataclasses import asdict
        from pathlib import Path

        import joblib

        if self.model is None:
            raise RuntimeError("TitleEncoder.save called before fit()")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"config": asdict(self.config), "history": self.history,
                                                        "sklearn": _sklearn_version()}, indent=2))
        self.model.save(folder / "encoder.keras")
        joblib.dump({"vectorizers": self.vectorizers, "svd": self.svd}, folder / "features.joblib")
        return folder

    @classmethod
    def load(cls, folder) -> "TitleEncoder":
        """What :meth:`save` wrote; the sklearn parts only under the scikit-learn version that pickled them."""
        import json
        from pathlib import Path

        import joblib
        import keras

        folder = Path(folder)
        meta = json.loads((folder / "config.json").read_text())
        if meta["sklearn"] != _sklearn_version():
            raise RuntimeError(f"{folder} was saved with scikit-learn {meta['sklearn']}, this environment has "
                               f"{_sklearn_version()}: install that version or refit the matcher")
        encoder = cls(ArcFaceConfig(**meta["config"]))
        parts = joblib.load(folder / "features.joblib")
        encoder.vectorizers, encoder.svd, encoder.history = parts["vectorizers"], parts["svd"], meta["history"]
        encoder.model = keras.saving.load_model(folder / "encoder.keras")
        return encoder


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__


def _tqdm_epochs_class():
    import keras

    class _Bar(keras.callbacks.Callback):
        """One tqdm step per epoch with the running loss (Keras' own bar floods notebooks)."""

        def __init__(self, epochs: int, enabled: bool):
            super().__init__()
            self.bar = tqdm(total=epochs, desc="arcface title", disable=not enabled)

        def on_epoch_end(self, epoch, logs=None):
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{(logs or {}).get('loss', float('nan')):.3f}")

        def on_train_end(self, logs=None):
            self.bar.close()

    return _Bar


def _TqdmEpochs(epochs: int, enabled: bool):
    return _tqdm_epochs_class()(epochs, enabled)


def _build_encoder(n_features: int, cfg: ArcFaceConfig):
    """SVD features -> Dense -> BN -> ReLU -> Dropout -> Dense -> BN -> L2 (BN before normalising)."""
    import keras

    inp = keras.Input((n_features,))
    h = keras.layers.Dense(cfg.hidden, use_bias=False)(inp)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Activation("relu")(h)
    h = keras.layers.Dropout(cfg.dropout)(h)
    h = keras.layers.Dense(cfg.dim, use_bias=False)(h)
    h = keras.layers.BatchNormalization()(h)
    out = keras.layers.UnitNormalization()(h)
    return keras.Model(inp, out, name="title_encoder")
