"""Drawing one product alone (shape, pattern, shading, label) on a transparent canvas, plus the fonts and fields."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFont

from samesame.data.sample.catalogue import CYLINDRICAL_SHAPES, RGB, SUPERSAMPLE
from samesame.data.sample.colours import _readable_on, _scaled
from samesame.data.sample.records import Look


@functools.lru_cache(maxsize=None)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(6, size))


def _fit_font(text: str, max_w: float, max_h: float) -> ImageFont.FreeTypeFont:
    """The largest font for which ``text`` fits in max_w x max_h pixels."""
    length_at_100 = max(_font(100).getlength(text), 1.0)
    return _font(int(min(max_h, max_w * 100 / length_at_100)))


def _smooth_noise(w: int, h: int, period_px: float, seed: int) -> np.ndarray:
    """Blotchy noise in 0..1 with features about ``period_px`` wide (for camo, marble, wood)."""
    rng = np.random.default_rng(seed)
    cells = max(2, int(max(w, h) / max(period_px, 1.0)) + 2)
    grid = Image.fromarray((rng.random((cells, cells)) * 255).astype(np.uint8))
    return np.asarray(grid.resize((w, h), Image.BICUBIC), dtype=np.float32) / 255.0


def pattern_field(kind: str, w: int, h: int, period_px: float, angle: float, seed: int) -> np.ndarray:
    """A 0..1 field (h, w): where a two-colour pattern shows its second colour."""
    yy = np.arange(h, dtype=np.float32)[:, None] / max(h - 1, 1)
    if kind in ("solid", "plain"):
        return np.zeros((h, w), np.float32)
    if kind == "gradient":
        return np.broadcast_to(yy, (h, w))
    if kind == "studio":  # light wall, horizon, slightly darker floor
        return np.broadcast_to(np.clip((yy - 0.62) * 6, 0, 1) * 0.8 + 0.2 * yy, (h, w))
    a = math.radians(angle)
    x = np.arange(w, dtype=np.float32)[None, :] / period_px
    y = np.arange(h, dtype=np.float32)[:, None] / period_px
    u = x * math.cos(a) + y * math.sin(a)
    v = -x * math.sin(a) + y * math.cos(a)
    if kind == "stripes":
        return ((u % 1.0) < 0.5).astype(np.float32)
    if kind == "dots":
        return ((((u % 1.0) - 0.5) ** 2 + ((v % 1.0) - 0.5) ** 2) < 0.08).astype(np.float32)
    if kind == "checker":
        return ((np.floor(u) + np.floor(v)) % 2).astype(np.float32)
    if kind == "waves":
        return 0.5 + 0.5 * np.sin(2 * np.pi * u + 1.5 * np.sin(np.pi * v))
    noise = _smooth_noise(w, h, period_px, seed)
    if kind == "camo":
        return np.clip((noise - 0.5) * 8 + 0.5, 0, 1)
    if kind == "marble":
        return (0.5 + 0.5 * np.sin(2 * np.pi * (u * 0.3 + 3 * noise))) ** 4
    if kind == "wood":
        return 0.5 + 0.5 * np.sin(2 * np.pi * (v * 2 + 2.5 * noise))
    raise ValueError(f"unknown pattern {kind!r}")


def paint(field: np.ndarray, c1: RGB, c2: RGB) -> Image.Image:
    """Blend two colours by a 0..1 field (PIL's composite: much faster than float maths)."""
    mask = Image.fromarray((np.clip(field, 0, 1) * 255).astype(np.uint8))
    return Image.composite(Image.new("RGB", mask.size, tuple(c2)), Image.new("RGB", mask.size, tuple(c1)), mask)


@dataclass(frozen=True)
class _Frame:
    """Maps the product's own 0..1 coordinates onto sprite pixels."""

    x0: float
    y0: float
    w: float
    h: float

    def p(self, u: float, v: float) -> tuple[float, float]:
        return self.x0 + u * self.w, self.y0 + v * self.h

    def rect(self, u0: float, v0: float, u1: float, v1: float) -> tuple[float, float, float, float]:
        return (*self.p(u0, v0), *self.p(u1, v1))


def _draw_bottle(body: ImageDraw.ImageDraw, det: ImageDraw.ImageDraw, f: _Frame, look: Look):
    body.rectangle(f.rect(0.40, 0.07, 0.60, 0.22), fill=255)
    body.ellipse(f.rect(0.08, 0.16, 0.92, 0.5), fill=255)
    body.rounded_rectangle(f.rect(0.08, 0.32, 0.92, 1.0), radius=0.1 * f.w, fill=255)
    det.rounded_rectangle(f.rect(0.36, 0.0, 0.64, 0.09), radius=0.03 * f.w, fill=look.trim)
    return f.rect(0.08, 0.46, 0.92, 0.82)


def _draw_jar(body, det, f: _Frame, look: Look):
    body.rounded_rectangle(f.rect(0.0, 0.16, 1.0, 1.0), radius=0.12 * f.w, fill=255)
    det.rounded_rectangle(f.rect(0.04, 0.0, 0.96, 0.2), radius=0.04 * f.w, fill=look.trim)
    for v in (0.05, 0.1, 0.15):
        det.line([f.p(0.06, v), f.p(0.94, v)], fill=_scaled(look.trim, 0.75), width=max(1, int(0.012 * f.w)))
    return f.rect(0.0, 0.36, 1.0, 0.86)


def _draw_can(body, det, f: _Frame, look: Look):
    body.rectangle(f.rect(0.0, 0.06, 1.0, 0.94), fill=255)
    body.ellipse(f.rect(0.0, 0.88, 1.0, 1.0), fill=255)
    det.ellipse(f.rect(0.0, 0.0, 1.0, 0.12), fill=(190, 192, 198))
    det.ellipse(f.rect(0.14, 0.02, 0.86, 0.10), fill=(150, 152, 160))
    return f.rect(0.06, 0.28, 0.94, 0.74)


def _draw_tube(body, det, f: _Frame, look: Look):
    body.polygon([f.p(0.0, 0.06), f.p(1.0, 0.06), f.p(0.82, 0.86), f.p(0.18, 0.86)], fill=255)
    det.rectangle(f.rect(0.0, 0.0, 1.0, 0.07), fill=look.trim)
    for u in np.linspace(0.05, 0.95, 12):
        det.line([f.p(u, 0.005), f.p(u, 0.065)], fill=_scaled(look.trim, 0.7), width=max(1, int(0.01 * f.w)))
    det.rounded_rectangle(f.rect(0.3, 0.85, 0.7, 1.0), radius=0.03 * f.w, fill=look.trim)
    return f.rect(0.14, 0.2, 0.86, 0.58)


def _draw_box(body, det, f: _Frame, look: Look):
    front = [f.p(0, 0.18), f.p(0.8, 0.18), f.p(0.8, 1), f.p(0, 1)]
    top = [f.p(0, 0.18), f.p(0.2, 0), f.p(1, 0), f.p(0.8, 0.18)]
    side = [f.p(0.8, 0.18), f.p(1, 0), f.p(1, 0.82), f.p(0.8, 1)]
    for poly in (front, top, side):
        body.polygon(poly, fill=255)
    det.polygon(top, fill=(255, 255, 255, 80))
    det.polygon(side, fill=(0, 0, 0, 90))
    return f.rect(0.07, 0.36, 0.73, 0.82)


def _draw_pouch(body, det, f: _Frame, look: Look):
    body.rounded_rectangle(f.rect(0.04, 0.04, 0.96, 1.0), radius=0.12 * f.w, fill=255)
    body.rectangle(f.rect(0.04, 0.04, 0.96, 0.3), fill=255)
    det.rectangle(f.rect(0.04, 0.04, 0.96, 0.1), fill=(0, 0, 0, 60))
    det.line([f.p(0.06, 0.15), f.p(0.94, 0.15)], fill=(0, 0, 0, 100), width=max(1, int(0.015 * f.w)))
    return f.rect(0.14, 0.3, 0.86, 0.8)


def _draw_phone_case(body, det, f: _Frame, look: Look):
    body.rounded_rectangle(f.rect(0, 0, 1, 1), radius=0.16 * f.w, fill=255)
    det.rounded_rectangle(f.rect(0.07, 0.03, 0.5, 0.26), radius=0.08 * f.w, fill=look.trim)
    for u, v in ((0.19, 0.09), (0.19, 0.2), (0.38, 0.09)):
        r = 0.07
        det.ellipse(f.rect(u - r, v - r * f.w / f.h, u + r, v + r * f.w / f.h), fill=(20, 20, 26),
                    outline=(110, 110, 120), width=max(1, int(0.015 * f.w)))
    det.ellipse(f.rect(0.36, 0.18, 0.42, 0.18 + 0.06 * f.w / f.h), fill=(250, 240, 200))
    return f.rect(0.2, 0.74, 0.8, 0.86)


def _draw_shoe(body, det, f: _Frame, look: Look):
    upper = [(0.03, 0.8), (0.0, 0.42), (0.06, 0.22), (0.24, 0.24), (0.34, 0.36), (0.55, 0.44), (0.8, 0.52),
             (0.97, 0.64), (1.0, 0.8)]
    body.polygon([f.p(*q) for q in upper], fill=255)
    det.rounded_rectangle(f.rect(0.0, 0.76, 1.0, 1.0), radius=0.06 * f.h, fill=look.trim)
    det.ellipse(f.rect(0.06, 0.2, 0.28, 0.32), fill=(35, 35, 38))
    det.polygon([f.p(0.2, 0.66), f.p(0.62, 0.5), f.p(0.9, 0.64), f.p(0.58, 0.6)], fill=look.accent)
    for j in range(4):
        u, v = 0.38 + 0.07 * j, 0.38 + 0.035 * j
        det.line([f.p(u, v), f.p(u + 0.05, v + 0.05)], fill=_readable_on(look.body), width=max(1, int(0.02 * f.h)))
    return f.rect(0.2, 0.62, 0.5, 0.74)


def _draw_tshirt(body, det, f: _Frame, look: Look):
    outline = [(0.34, 0.0), (0.66, 0.0), (1.0, 0.16), (0.9, 0.4), (0.78, 0.33), (0.78, 1.0), (0.22, 1.0),
               (0.22, 0.33), (0.1, 0.4), (0.0, 0.16)]
    body.polygon([f.p(*q) for q in outline], fill=255)
    det.chord(f.rect(0.36, -0.08, 0.64, 0.1), 0, 180, fill=_scaled(look.body, 0.6))
    return f.rect(0.3, 0.3, 0.7, 0.52)


def _draw_bag(body, det, f: _Frame, look: Look):
    det.arc(f.rect(0.22, 0.0, 0.78, 0.6), 180, 360, fill=look.trim, width=max(2, int(0.05 * f.w)))
    body.polygon([f.p(0.08, 0.3), f.p(0.92, 0.3), f.p(1, 1), f.p(0, 1)], fill=255)
    det.rectangle(f.rect(0.08, 0.3, 0.92, 0.38), fill=(0, 0, 0, 50))
    return f.rect(0.3, 0.55, 0.7, 0.8)


SHAPES = {"bottle": _draw_bottle, "jar": _draw_jar, "can": _draw_can, "tube": _draw_tube, "box": _draw_box,
          "pouch": _draw_pouch, "phone_case": _draw_phone_case, "shoe": _draw_shoe, "tshirt": _draw_tshirt,
          "bag": _draw_bag}


def _cylinder_shading(fill: Image.Image, f: _Frame) -> Image.Image:
    """Darker edges and a highlight stripe: round containers look round."""
    t = np.clip((np.arange(fill.width, dtype=np.float32) - f.x0) / f.w, 0, 1)
    shade = (255 * (0.72 + 0.28 * np.sin(np.pi * t))).astype(np.uint8)
    highlight = (70 * np.exp(-(((t - 0.28) / 0.05) ** 2))).astype(np.uint8)

    def columns(row: np.ndarray) -> Image.Image:
        return Image.fromarray(np.ascontiguousarray(np.broadcast_to(row, (fill.height, fill.width)))).convert("RGB")

    return ImageChops.add(ImageChops.multiply(fill, columns(shade)), columns(highlight))


def _draw_label(sprite: Image.Image, box: tuple[float, float, float, float], look: Look) -> None:
    """The label: a band, panel or oval with brand, product line and variant; or a plain print."""
    d = ImageDraw.Draw(sprite)
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    inner = 0.88
    if look.label_style == "band":
        d.rectangle(box, fill=look.label_bg)
    elif look.label_style == "panel":
        d.rounded_rectangle(box, radius=0.12 * min(w, h), fill=look.label_bg, outline=look.accent,
                            width=max(1, int(0.03 * min(w, h))))
    elif look.label_style == "oval":
        d.ellipse(box, fill=look.label_bg, outline=look.accent, width=max(1, int(0.03 * min(w, h))))
        inner = 0.66
    fg = look.label_fg if look.label_style != "print" else _readable_on(look.body)
    weights = (0.42, 0.22, 0.3)[: len(look.label_lines)]
    y = y0 + h * (1 - inner) / 2
    for text, share in zip(look.label_lines, weights):
        line_h = h * inner * share / sum(weights)
        font = _fit_font(text, w * inner, line_h * 0.85)
        d.text(((x0 + x1) / 2, y + line_h / 2), text, font=font, fill=fg, anchor="mm",
               stroke_width=max(0, font.size // 18) if share == weights[0] else 0, stroke_fill=fg)
        y += line_h


def render_sprite(look: Look, side: int) -> Image.Image:
    """The product alone on a transparent square canvas of ``side`` pixels."""
    s = side * SUPERSAMPLE
    f = _Frame(s * (1 - look.width) / 2, s * (1 - look.height) / 2, s * look.width, s * look.height)
    mask = Image.new("L", (s, s), 0)
    details = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    label_box = SHAPES[look.shape](ImageDraw.Draw(mask), ImageDraw.Draw(details), f, look)
    fill = paint(pattern_field(look.pattern, s, s, look.pattern_period * s, look.pattern_angle, look.texture_seed),
                 look.body, look.accent)
    if look.shape in CYLINDRICAL_SHAPES:
        fill = _cylinder_shading(fill, f)
    sprite = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    sprite.paste(fill, mask=mask)
    sprite.alpha_composite(details)
    _draw_label(sprite, label_box, look)
    return sprite.convert("RGBa").reduce(SUPERSAMPLE).convert("RGBA")
