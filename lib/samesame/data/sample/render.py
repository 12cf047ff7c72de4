"""Drawing a listing's photo: the product photographed, then the seller's edits; writes and hashes the JPEGs."""

from __future__ import annotations

import math
import os
from typing import Sequence

import imagehash
from PIL import Image, ImageDraw, ImageEnhance

from samesame.core.files import replaced_file
from samesame.data.sample.colours import _readable_on
from samesame.data.sample.records import Edit, Look, Shop, Shot, Sticker, Watermark
from samesame.data.sample.sprite import _fit_font, paint, pattern_field, render_sprite


def render_background(shot: Shot, w: int, h: int) -> Image.Image:
    field = pattern_field(shot.background, w, h, shot.bg_period * max(w, h), 0.0, shot.bg_seed)
    return paint(field, *shot.bg_colours)


def _placed(item: Image.Image, xy: tuple[int, int], size: tuple[int, int]) -> Image.Image:
    """``item`` on a transparent canvas of ``size`` at ``xy`` (which may hang over the edges)."""
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    layer.paste(item, xy)
    return layer


def _soft_shadow(item: Image.Image) -> Image.Image:
    """A blurred dark copy of the product's outline."""
    shadow = Image.new("RGBA", item.size, (0, 0, 0, 0))
    shadow.putalpha(item.getchannel("A").point(lambda a: int(a * 0.35)))
    return shadow.resize((item.width // 4 + 1, item.height // 4 + 1), Image.BILINEAR).resize(item.size, Image.BILINEAR)


def render_shot(sprite: Image.Image, shot: Shot, w: int, h: int) -> Image.Image:
    """The product photographed: background, soft shadow, product placed, scaled, turned."""
    photo = render_background(shot, w, h).convert("RGBA")
    side = min(w, h)
    item = sprite.resize((max(1, round(side * shot.scale * shot.squeeze)), max(1, round(side * shot.scale))),
                         Image.BICUBIC)
    if shot.tilt:
        item = item.rotate(shot.tilt, resample=Image.BILINEAR, expand=True)
    x = round(shot.center[0] * w - item.width / 2)
    y = round(shot.center[1] * h - item.height / 2)
    if shot.shadow:
        offset = round(side * 0.025)
        photo.alpha_composite(_placed(_soft_shadow(item), (x + offset, y + offset), photo.size))
    photo.alpha_composite(_placed(item, (x, y), photo.size))
    return photo.convert("RGB")


def _collage(photos: Sequence[Image.Image], side: int) -> Image.Image:
    """A 2x2 grid with white gutters, as sellers post "all photos in one"."""
    gap = max(2, side // 60)
    tile = (side - gap) // 2
    sheet = Image.new("RGB", (side, side), (255, 255, 255))
    for i, photo in enumerate(photos[:4]):
        sheet.paste(photo.resize((tile, tile), Image.BICUBIC), ((i % 2) * (tile + gap), (i // 2) * (tile + gap)))
    return sheet


def _geometry(photo: Image.Image, edit: Edit) -> Image.Image:
    """Flip, rotate, crop/zoom and pad; returns the image at its output size."""
    out_w, out_h = edit.size
    if edit.flip:
        photo = photo.transpose(Image.FLIP_LEFT_RIGHT)
    if edit.rotate:
        corner = photo.getpixel((1, 1))
        photo = photo.rotate(edit.rotate, resample=Image.BILINEAR, fillcolor=corner)
    m = photo.width
    crop_w = m * (1 - edit.zoom)
    crop_h = crop_w * out_h / out_w
    x0 = (m - crop_w) * edit.zoom_at[0]
    y0 = (m - crop_h) * edit.zoom_at[1]
    inner_w = max(1, round(out_w * (1 - 2 * edit.pad)))
    inner_h = max(1, round(out_h * (1 - 2 * edit.pad)))
    content = photo.resize((inner_w, inner_h), Image.BICUBIC, box=(x0, y0, x0 + crop_w, y0 + crop_h))
    if not edit.pad:
        return content
    canvas = Image.new("RGB", (out_w, out_h), edit.pad_colour)
    canvas.paste(content, ((out_w - inner_w) // 2, (out_h - inner_h) // 2))
    return canvas


def _frame(img: Image.Image, shop: Shop) -> Image.Image:
    """The shop's template: a coloured border and a bottom band with the shop name."""
    d = ImageDraw.Draw(img)
    w, h = img.size
    t = max(2, round(0.025 * min(w, h)))
    d.rectangle((0, 0, w - 1, h - 1), outline=shop.colour, width=t)
    band = round(0.12 * h)
    d.rectangle((0, h - band, w, h), fill=shop.colour)
    font = _fit_font(shop.name, w * 0.8, band * 0.6)
    d.text((w / 2, h - band / 2), shop.name, font=font, fill=_readable_on(shop.colour), anchor="mm")
    return img


def _colour_shift(img: Image.Image, edit: Edit) -> Image.Image:
    img = ImageEnhance.Brightness(img).enhance(edit.brightness)
    img = ImageEnhance.Contrast(img).enhance(edit.contrast)
    return ImageEnhance.Color(img).enhance(edit.saturation)


def _watermark(img: Image.Image, mark: Watermark) -> Image.Image:
    """Semi-transparent shop name: big in the middle, small in a corner, or tiled diagonally."""
    w, h = img.size
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    fill = (*mark.colour, int(255 * mark.opacity))
    if mark.style == "center":
        d.text((w / 2, h / 2), mark.text, font=_fit_font(mark.text, w * 0.8, h * 0.15), fill=fill, anchor="mm")
    elif mark.style == "corner":
        d.text((w * 0.97, h * 0.96), mark.text, font=_fit_font(mark.text, w * 0.4, h * 0.06), fill=fill, anchor="rd")
    else:
        font = _fit_font(mark.text, w * 0.45, h * 0.07)
        for j in range(-1, 5):
            for i in range(-1, 3):
                d.text((i * w * 0.5 + j * w * 0.15, j * h * 0.22), mark.text, font=font, fill=fill)
    return Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB")


def _sticker(img: Image.Image, st: Sticker) -> None:
    """A promo sticker ("SALE", "COD", "50%") in a corner."""
    d = ImageDraw.Draw(img)
    side = min(img.size)
    r = st.size * side / 2
    cx, cy = st.center[0] * img.width, st.center[1] * img.height
    if st.shape == "burst":
        pts = [(cx + (r if k % 2 == 0 else r * 0.78) * math.cos(math.pi * k / 12),
                cy + (r if k % 2 == 0 else r * 0.78) * math.sin(math.pi * k / 12)) for k in range(24)]
        d.polygon(pts, fill=st.colour)
    elif st.shape == "circle":
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=st.colour, outline=(255, 255, 255),
                  width=max(1, int(r * 0.08)))
    else:
        d.rounded_rectangle((cx - r * 1.3, cy - r * 0.55, cx + r * 1.3, cy + r * 0.55), radius=r * 0.2, fill=st.colour)
    width = r * (2.2 if st.shape == "tag" else 1.4)
    d.text((cx, cy), st.text, font=_fit_font(st.text, width, r * 0.7), fill=_readable_on(st.colour), anchor="mm")


def render_listing(sprite: Image.Image, edit: Edit, master_side: int, shots: dict) -> Image.Image:
    """One listing's image: the product photo(s) with the seller's edits applied.

    ``shots`` caches rendered photos by :class:`Shot`, so a product's usual photo is drawn once.
    """
    photos = []
    for shot in edit.shots:
        if shot not in shots:
            shots[shot] = render_shot(sprite, shot, master_side, master_side)
        photos.append(shots[shot])
    photo = photos[0] if len(photos) == 1 else _collage(photos, master_side)
    img = _geometry(photo, edit)
    if edit.frame is not None:
        img = _frame(img, edit.frame)
    img = _colour_shift(img, edit)
    if edit.watermark is not None:
        img = _watermark(img, edit.watermark)
    for st in edit.stickers:
        _sticker(img, st)
    return img


def render_group(task: tuple[Look, Sequence[tuple[Edit, str]], int]) -> list[str]:
    """Render, save and hash every listing image of one product; returns the phashes in order.

    The hash is taken from the JPEG as written (re-opened), exactly as Kaggle's column was.
    Module-level so a multiprocessing pool can pickle it.
    """
    look, jobs, master_side = task
    sprite = render_sprite(look, master_side)
    shots: dict = {}
    written: dict[str, str] = {}  # path -> phash; listings sharing one image file are drawn once
    for edit, path in jobs:
        if path not in written:
            if not os.path.isfile(path):    # a generation stopped midway keeps the photos it wrote (each whole)
                with replaced_file(path) as tmp:
                    render_listing(sprite, edit, master_side, shots).save(tmp, "JPEG", quality=edit.quality)
            with Image.open(path) as saved:
                written[path] = str(imagehash.phash(saved))
    return [written[path] for _, path in jobs]
