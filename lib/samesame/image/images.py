"""Image loading that never crashes a run and never drops a listing.

Every call returns a status next to the pixels, so a bad file becomes a counted,
reportable row (and a placeholder / zero embedding downstream) instead of an
exception 40 minutes into an embedding run.

Statuses:
  ok          decoded fine
  truncated   JPEG whose data stops early; decoded as far as the data goes (the
              rest is grey). Usable: a product photo missing its bottom rows still
              matches. Detected by a strict decode failing and a decode with a
              synthetic end-of-image marker succeeding, which keeps PIL's global
              ``ImageFile.LOAD_TRUNCATED_IMAGES`` untouched (thread-safe).
  missing     no path (None / NaN / "") or no such file
  empty       zero-byte file
  unreadable  not an image, corrupt, or truncated in a non-JPEG format
  too_large   more than ``MAX_DECODE_PIXELS`` pixels even after reduced-scale
              decoding, or beyond PIL's decompression-bomb limit; reported, not
              decoded, so one bogus file cannot take gigabytes
"""

from __future__ import annotations

import io
import stat
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

STATUSES: tuple[str, ...] = ("ok", "truncated", "missing", "empty", "unreadable", "too_large")
USABLE_STATUSES: frozenset[str] = frozenset({"ok", "truncated"})

# Decoded-pixel budget per image (RGBA: 4 bytes/px -> 160 MB). JPEGs are first
# DCT-scaled by draft(), so only non-JPEG giants or calls without max_side hit it.
MAX_DECODE_PIXELS = 40_000_000
PLACEHOLDER_GREY = 128
_WHITE = (255, 255, 255)
_JPEG_EOI = b"\xff\xd9"


def _is_missing_path(path) -> bool:
    """None, NaN (pandas' missing value) and "" all mean "this listing has no image"."""
    return path is None or (isinstance(path, float) and np.isnan(path)) or str(path) == ""


def _open_decoded(source, draft_side: int | None) -> Image.Image:
    """Open lazily, ask the JPEG decoder for a reduced scale, enforce the pixel budget, decode.

    draft() makes libjpeg decode at 1/2, 1/4 or 1/8 scale while keeping both sides
    >= draft_side, which is what makes 4000px+ photos cheap.
    """
    with Image.open(source) as img:  # closes the file handle even when decoding fails
        if draft_side:
            img.draft("RGB", (draft_side, draft_side))
        if img.width * img.height > MAX_DECODE_PIXELS:
            raise Image.DecompressionBombError(f"{img.width}x{img.height} exceeds MAX_DECODE_PIXELS")
        img.load()
        return img


def _decode_with_status(path: Path, draft_side: int | None) -> tuple[Image.Image | None, str]:
    """Decode strictly; a JPEG that fails is retried with an end-of-image marker appended."""
    try:
        return _open_decoded(path, draft_side), "ok"
    except Image.DecompressionBombError:
        return None, "too_large"
    except Exception:  # noqa: BLE001 - any decoder failure is a per-file status, never a crash
        pass
    data = path.read_bytes()
    if not data.startswith(b"\xff\xd8"):  # only JPEGs can be recovered this way
        return None, "unreadable"
    try:
        return _open_decoded(io.BytesIO(data + _JPEG_EOI), draft_side), "truncated"
    except Exception:  # noqa: BLE001
        return None, "unreadable"


def _high_bit_depth_to_l(img: Image.Image) -> Image.Image:
    """16-bit / int32 / float greyscale: PIL's convert() clips these to white, so rescale 0..65535 -> 0..255."""
    arr = np.asarray(img, dtype=np.float32) / 257.0
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; transparency is composited on white (how shops display cut-out products)."""
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        img = _high_bit_depth_to_l(img)
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if not has_alpha:
        return img if img.mode == "RGB" else img.convert("RGB")
    rgba = img.convert("RGBA")
    background = Image.new("RGB", rgba.size, _WHITE)
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _load_rgb(path, draft_side: int | None) -> tuple[Image.Image | None, str]:
    """Shared body of open_rgb/load_array: status checks, decode, EXIF orientation, RGB."""
    if _is_missing_path(path):
        return None, "missing"
    path = Path(path)
    try:
        info = path.stat()
    except OSError:
        return None, "missing"
    if not stat.S_ISREG(info.st_mode):
        return None, "missing"
    if info.st_size == 0:
        return None, "empty"
    img, status = _decode_with_status(path, draft_side)
    if img is None:
        return None, status
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - broken EXIF must not cost us the pixels
        pass
    return to_rgb(img), status


def open_rgb(path, *, max_side: int | None = None) -> tuple[Image.Image | None, str]:
    """Load ``path`` as an upright RGB image, or (None, status) when it cannot be used.

    max_side: if given, the result fits in max_side x max_side (aspect kept), and
    JPEGs are decoded at reduced DCT scale first, so huge photos stay cheap.
    """
    img, status = _load_rgb(path, max_side)
    if img is not None and max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return img, status


def placeholder(size: int) -> np.ndarray:
    """Neutral grey (size, size, 3) uint8 image standing in for an unusable file."""
    return np.full((size, size, 3), PLACEHOLDER_GREY, dtype=np.uint8)


def load_array(path, size: int) -> tuple[np.ndarray, str]:
    """(size, size, 3) uint8 of the whole image squashed to a square (no crop: products are
    mostly square and cropping can cut the product); grey placeholder when unusable."""
    img, status = _load_rgb(path, size)
    if img is None:
        return placeholder(size), status
    # reducing_gap: box-reduce big images by an integer factor first, then filter; fast, same look.
    img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(img, dtype=np.uint8), status


def count_statuses(statuses: Iterable[str]) -> dict[str, int]:
    """Count per status with every known status present (zeros included), for run reports."""
    counts = dict.fromkeys(STATUSES, 0)
    for status in statuses:
        if status not in counts:
            raise ValueError(f"unknown image status {status!r}; expected one of {STATUSES}")
        counts[status] += 1
    return counts


def is_usable(statuses) -> np.ndarray:
    """Boolean mask of statuses whose pixels are real (ok or truncated)."""
    return np.isin(np.asarray(statuses, dtype=str), list(USABLE_STATUSES))


__all__ = [
    "MAX_DECODE_PIXELS",
    "STATUSES",
    "USABLE_STATUSES",
    "count_statuses",
    "is_usable",
    "load_array",
    "open_rgb",
    "placeholder",
    "to_rgb",
]
