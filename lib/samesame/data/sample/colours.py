"""Colour arithmetic shared by planning and drawing: grey levels, shades, and the text colour readable on a colour."""

from __future__ import annotations

from samesame.data.sample.catalogue import RGB


def _luma(rgb: RGB) -> float:
    """Grey level as PIL's convert("L") computes it: what the perceptual hash sees."""
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _scaled(rgb: RGB, factor: float) -> RGB:
    return tuple(int(min(255, max(0, round(c * factor)))) for c in rgb)


def _readable_on(bg: RGB) -> RGB:
    return (25, 25, 30) if _luma(bg) > 140 else (250, 250, 250)
