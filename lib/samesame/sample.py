"""A synthetic stand-in for the Kaggle "Shopee - Price Match Guarantee" data, in Kaggle's exact layout.

Why it exists: the real data may not be committed or shipped, yet notebooks, tests and demos need a
dataset that *behaves* like it, so that numbers measured on it mean something. The sample is
generated on first use (never committed) and is byte-identical for the same seed and arguments.

What makes it believable rather than a toy:

* Group sizes follow the real histogram (63% pairs, heavy tail up to ~50, no singletons).
* Each product gets a procedurally drawn rendering (a bottle, box, pouch, tube, jar, can, phone
  case, shoe, t-shirt or bag with its own colours, pattern and a label with brand text).
  Each *listing* is that rendering as a seller re-published it: cropped or zoomed, padded,
  rotated, flipped, framed in the shop's template, watermarked, covered in promo stickers,
  colour-shifted, saved at some JPEG quality -- or re-photographed (other background, angle,
  position), or put into a collage.
* Hard negatives: products of one family (same brand and product line) land in different groups:
  other size (same look, other label text, other scale) or other flavour/colour (hue turned with the
  grey levels kept, which fools the greyscale perceptual hash but not a colour-aware CNN).
* Titles in marketplace style (Indonesian/English mix, promo words, unit spellings, casing noise,
  typos, truncation), sharing most words within a group and brand/product words across a family,
  plus a few verbatim-duplicate titles across groups, as in the real data.

The knobs that move the difficulty of each signal are module constants: :data:`DEFAULT_EDITS`
(image edits, the phash-vs-CNN balance), the ``TITLE_*`` probabilities (TF-IDF difficulty) and
:data:`FAMILY_SIZE_SHARES` (how many hard negatives there are).

Usage: ``generate_sample(out_dir)`` or ``python -m samesame.sample OUT_DIR [--groups N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import colorsys
import functools
import json
import math
import multiprocessing
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import imagehash
import numpy as np
import pandas as pd
from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFont
from tqdm.auto import tqdm

RGB = tuple[int, int, int]

# --------------------------------------------------------------------------------------------------
# Group and family structure
# --------------------------------------------------------------------------------------------------

GROUP_SIZE_SHARES = {2: 0.63, 3: 0.16, 4: 0.08, 5: 0.04}  # measured on Kaggle's train.csv
GROUP_SIZE_TAIL = (6, 50)  # the remaining ~9% of groups: sizes 6..50 ...
GROUP_SIZE_TAIL_EXPONENT = 3.0  # ... with P(size) ~ size^-3 (fits the real 6, 7, 8, 10 shares)

# Products per family (brand + product line). Siblings are each other's hard negatives.
FAMILY_SIZE_SHARES = {1: 0.72, 2: 0.18, 3: 0.10}

# --------------------------------------------------------------------------------------------------
# Vocabularies
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Category:
    """A kind of product: how it is drawn, what it is called, and what tells its variants apart."""

    shape: str
    nouns: tuple[tuple[str, ...], ...]  # product nouns, each with the spellings sellers use for it
    variant_kinds: tuple[tuple[str, float], ...]  # "amount" | "flavour" | "colour" | "model", with shares
    unit: str = ""
    amounts: tuple[int, ...] = ()
    flavours: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()  # words a product of this kind may carry in every title
    patterns: tuple[tuple[str, float], ...] = (("solid", 0.35), ("gradient", 0.2), ("stripes", 0.15),
                                               ("waves", 0.15), ("dots", 0.1), ("camo", 0.05))


CONSUMABLE_VARIANTS = (("amount", 0.55), ("flavour", 0.45))
APPAREL_PATTERNS = (("solid", 0.6), ("stripes", 0.15), ("checker", 0.1), ("camo", 0.1), ("dots", 0.05))

CATEGORIES = (
    Category(
        "bottle",
        (("Shampoo Anti Ketombe", "Sampo Anti Ketombe", "Shampoo Antidandruff"),
         ("Sabun Cair", "Sabun Mandi Cair", "Body Wash"), ("Minyak Goreng", "Minyak Sayur"),
         ("Hand Sanitizer", "Handsanitizer", "Hand Sanitiser"), ("Body Lotion", "Lotion Badan"),
         ("Kecap Manis", "Kecap")),
        CONSUMABLE_VARIANTS, "ml", (100, 200, 250, 400, 500, 1000),
        ("Lavender", "Strawberry", "Aloe Vera", "Lemon", "Mint", "Green Tea", "Original"),
        ("Pump", "Refill", "BPOM", "Halal", "Botol", "isi ulang"),
    ),
    Category(
        "box",
        (("Susu Bubuk", "Susu Formula"), ("Sereal", "Cereal Sarapan"), ("Teh Celup", "Teh Kotak"),
         ("Masker Medis", "Masker 3 Ply", "Masker Earloop"), ("Biskuit", "Biscuit"),
         ("Puzzle Anak", "Mainan Puzzle")),
        CONSUMABLE_VARIANTS, "gr", (200, 300, 400, 800, 1000),
        ("Coklat", "Vanila", "Madu", "Keju", "Stroberi", "Original"),
        ("isi 50pcs", "Box", "Kotak", "Karton", "Sachet", "Exp Panjang"),
    ),
    Category(
        "pouch",
        (("Kopi Bubuk", "Kopi Bubuk Robusta", "Coffee Powder"), ("Keripik Pedas", "Kripik Pedas", "Keripik Singkong"),
         ("Detergen Bubuk", "Deterjen", "Sabun Cuci Bubuk"), ("Makanan Kucing", "Cat Food", "Dry Food Kucing"),
         ("Gula Aren Bubuk", "Gula Semut")),
        CONSUMABLE_VARIANTS, "gr", (100, 200, 250, 500, 1000),
        ("Original", "Pedas", "Balado", "Keju", "Jagung Bakar", "Salmon", "Tuna"),
        ("Pouch", "Zipper", "Kemasan Baru", "Repack", "Kiloan"),
    ),
    Category(
        "tube",
        (("Pasta Gigi", "Odol", "Toothpaste"), ("Facial Wash", "Sabun Cuci Muka", "Facial Foam"),
         ("Sunscreen SPF 50", "Sunblock", "Sun Screen"), ("Krim Tangan", "Hand Cream"),
         ("Lem Serbaguna", "Lem Super")),
        CONSUMABLE_VARIANTS, "gr", (25, 50, 75, 100, 150),
        ("Whitening", "Acne", "Brightening", "Mint", "Herbal", "Sensitive"),
        ("BPOM", "Travel Size", "Tube", "Skincare", "Original"),
    ),
    Category(
        "jar",
        (("Selai Kacang", "Selai Peanut Butter"), ("Madu Murni", "Madu Hutan", "Honey"),
         ("Sambal Bawang", "Sambel Bawang", "Sambal Cumi"), ("Krim Malam", "Night Cream", "Cream Malam"),
         ("Pomade", "Pomade Oil Based")),
        CONSUMABLE_VARIANTS, "gr", (100, 150, 250, 500),
        ("Original", "Pedas", "Extra Pedas", "Coklat", "Crunchy", "Lemon"),
        ("Toples", "Jar", "Homemade", "Asli", "Kaca"),
    ),
    Category(
        "can",
        (("Kopi Susu Kaleng", "Kopi Kaleng"), ("Susu Kental Manis", "SKM"), ("Cat Semprot", "Pilox", "Cat Pilok"),
         ("Minuman Soda", "Soft Drink")),
        CONSUMABLE_VARIANTS, "ml", (150, 250, 330, 370, 400),
        ("Original", "Moka", "Vanila", "Gold", "Silver", "Zero"),
        ("Kaleng", "Dus isi 24", "Pack", "Can"),
    ),
    Category(
        "phone_case",
        (("Case HP", "Casing HP", "Case Handphone"), ("Softcase", "Soft Case", "Silikon Case"),
         ("Hardcase", "Hard Case"), ("Case Motif", "Custom Case")),
        (("colour", 0.6), ("model", 0.4)),
        extras=("Anti Crack", "Anti Jamur", "Premium", "Bening", "Kamera Protect", "Full Cover"),
        patterns=(("solid", 0.25), ("stripes", 0.15), ("dots", 0.15), ("checker", 0.15), ("camo", 0.15),
                  ("waves", 0.15)),
    ),
    Category(
        "shoe",
        (("Sepatu Sneakers Pria", "Sneakers Pria", "Sepatu Cowok"),
         ("Sepatu Wanita", "Sepatu Cewek", "Flat Shoes Wanita"),
         ("Sepatu Lari", "Sepatu Running", "Running Shoes"), ("Sepatu Sekolah", "Sepatu Anak Sekolah")),
        (("colour", 1.0),),
        extras=("Size 39-44", "Size 36-40", "Anti Slip", "Import", "Kanvas", "Sol Karet"),
        patterns=APPAREL_PATTERNS,
    ),
    Category(
        "tshirt",
        (("Kaos Polos", "Kaos Polos Cotton", "T-Shirt Polos"), ("Kaos Oversize", "Oversize Tee", "Kaos Oversized"),
         ("Baju Anak", "Kaos Anak"), ("Kemeja Flanel", "Kemeja")),
        (("colour", 1.0),),
        extras=("Cotton Combed 30s", "Allsize", "S M L XL", "Unisex", "Lengan Pendek", "Distro"),
        patterns=APPAREL_PATTERNS,
    ),
    Category(
        "bag",
        (("Tas Selempang", "Sling Bag", "Tas Slempang"), ("Tote Bag Kanvas", "Totebag", "Tas Kanvas"),
         ("Tas Ransel", "Backpack", "Ransel"), ("Tas Wanita", "Handbag Wanita")),
        (("colour", 1.0),),
        extras=("Waterproof", "Kanvas", "Import Korea", "Multifungsi", "Resleting"),
        patterns=APPAREL_PATTERNS,
    ),
)

# Named colours with the spellings sellers use; RGB is what the rendering shows.
COLOURS: dict[str, tuple[RGB, tuple[str, ...]]] = {
    "hitam": ((32, 32, 35), ("hitam", "black", "Hitam")),
    "putih": ((238, 238, 233), ("putih", "white", "Putih")),
    "merah": ((200, 35, 45), ("merah", "red", "Merah")),
    "biru": ((45, 85, 190), ("biru", "blue", "Biru")),
    "navy": ((28, 38, 85), ("navy", "Navy", "biru dongker")),
    "hijau": ((45, 150, 75), ("hijau", "green", "ijo")),
    "kuning": ((238, 200, 45), ("kuning", "yellow", "Kuning")),
    "pink": ((238, 140, 170), ("pink", "Pink", "merah muda")),
    "abu": ((128, 128, 134), ("abu-abu", "abu", "grey")),
    "coklat": ((118, 76, 42), ("coklat", "brown", "cokelat")),
    "ungu": ((120, 62, 160), ("ungu", "purple", "Ungu")),
    "orange": ((238, 130, 35), ("orange", "oranye", "Orange")),
    "maroon": ((110, 22, 38), ("maroon", "Maroon", "marun")),
    "cream": ((232, 218, 188), ("cream", "krem", "Cream")),
    "tosca": ((32, 160, 150), ("tosca", "Tosca", "hijau tosca")),
    "mint": ((160, 220, 190), ("mint", "Mint", "hijau mint")),
}

# Invented phone models, so "model" variants of a case read like the real ones.
PHONE_MODELS = ("Nexa A12", "Nexa A15", "Lumo 7", "Lumo 7 Pro", "Vexo Y20", "Vexo Y21", "Zeta Note 9",
                "Zeta Note 10", "Orin 5s", "Orin F9", "Kiro K3", "Kiro K5 Plus")

BRAND_SYLLABLES = ("ka", "lu", "mo", "ra", "si", "to", "na", "vi", "ze", "ri", "ba", "do", "me", "la", "ko", "sa",
                   "ni", "pu", "ta", "ve", "jo", "ha", "fe", "gi", "yu", "ro", "ki", "nu")
BRAND_SUFFIXES = ("", "", "", "", "", " Jaya", " Indo", " Beauty", " Kids", " Home", "x", "ra", "co")
PRODUCT_LINES = ("Fresh", "Active", "Gold", "Premium", "Herbal", "Ultra", "Classic", "Natural", "Daily", "Extra",
                 "Pro", "Lite", "Max", "Soft", "Glow", "Sport", "Kids", "Family", "Plus", "Cool")
DESCRIPTORS = ("Original", "ORI", "Import", "Premium", "Best Seller", "Grosir", "Terlaris", "100% Asli",
               "Kualitas Super", "Murah", "Promo")
PROMO_PREFIXES = ("READY STOCK", "READY", "[READY]", "COD", "[COD]", "BISA COD", "PROMO", "(PROMO)", "SALE",
                  "FLASH SALE", "TERMURAH", "NEW", "HOT ITEM", "Free Ongkir", "[BEST SELLER]", "ORIGINAL")
PROMO_SUFFIXES = ("murah", "MURAH", "termurah", "TERMURAH !!", "murah meriah", "grosir", "COD", "bisa COD",
                  "ready stock", "Original 100%", "ORI", "import", "promo", "free bubble wrap", "kirim cepat",
                  "Jakarta", "Surabaya", "Bandung", "Batam")
SEPARATORS = ((" ", 0.8), (" - ", 0.08), (" | ", 0.05), (" / ", 0.05), (", ", 0.02))
SHOP_WORDS = ("toko", "grosir", "kedai", "lapak", "gudang", "shop", "store", "mart", "bunda", "berkah", "sumber",
              "rumah", "pusat", "official")
STICKER_TEXTS = ("SALE", "COD", "50%", "READY", "PROMO", "BEST SELLER", "ORI", "GRATIS ONGKIR", "NEW", "30%",
                 "HOT", "DISKON")
STICKER_CORNERS = ((0.18, 0.18), (0.82, 0.18), (0.18, 0.82), (0.82, 0.82))
STICKER_COLOURS = ((220, 30, 40), (245, 200, 20), (245, 120, 20), (30, 160, 70), (230, 40, 120), (20, 90, 200))

# Title noise: the TF-IDF difficulty knobs.
TITLE_P_GENERIC = 0.05  # seller writes a brand-less generic title ("Kaos Polos murah")
TITLE_P_BRAND = 0.9
TITLE_P_LINE = 0.8
TITLE_P_VARIANT = 0.85
TITLE_P_NOUN_SYNONYM = 0.2  # another spelling of the product noun
TITLE_P_EXTRA = 0.7  # per product extra word
TITLE_P_DESCRIPTOR = 0.35  # per product descriptor
TITLE_P_REORDER = 0.35
TITLE_P_PREFIX = 0.35
TITLE_P_SUFFIX = 0.35
TITLE_P_BRACKETS = 0.1
TITLE_P_TYPO = 0.03  # per word
TITLE_P_TRUNCATE = 0.08
TITLE_P_COPY_SIBLING = 0.02  # verbatim title of a sibling product (real data has cross-group duplicate titles)
TITLE_CASINGS = (("asis", 0.55), ("upper", 0.2), ("title", 0.15), ("lower", 0.1))

# --------------------------------------------------------------------------------------------------
# Image edit strengths: the phash-vs-CNN difficulty knobs
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EditStrengths:
    """How often and how hard sellers change the product photo.

    The perceptual hash survives brightness, contrast, JPEG and small overlays, and breaks under
    geometric change (crop/zoom, padding, rotation, flip, re-shoot); a CNN embedding survives most
    of both. Raising the geometric knobs lowers phash F1 more than CNN F1.
    """

    p_same_file: float = 0.04  # re-uses another listing's very image file (5% of real rows share one)
    p_repost: float = 0.25  # re-posts another listing's photo, re-encoded and colour-shifted
    p_reshoot: float = 0.15  # other background, angle and position of the same product
    p_collage: float = 0.03  # 2x2 grid of several shots
    p_zoom: float = 0.35
    zoom: tuple[float, float] = (0.06, 0.32)  # share of the side cropped away
    p_pad: float = 0.2
    pad: tuple[float, float] = (0.04, 0.16)  # border width per side, as share of the side
    p_rotate: float = 0.12
    rotate_deg: tuple[float, float] = (2.0, 10.0)
    p_flip: float = 0.06
    p_watermark: float = 0.3
    watermark_opacity: tuple[float, float] = (0.15, 0.45)
    p_sticker: float = 0.3
    sticker_size: tuple[float, float] = (0.1, 0.22)
    p_frame_shop: float = 0.12  # share of shops that put every photo into a branded frame
    brightness: float = 0.15  # +- factor
    contrast: float = 0.15
    saturation: float = 0.25
    jpeg_quality: tuple[int, int] = (60, 95)
    p_non_square: float = 0.01  # about 1% of the real images are not square
    side_factors: tuple[tuple[float, float], ...] = ((1.0, 0.7), (0.8, 0.1), (1.25, 0.15), (1.5, 0.05))


DEFAULT_EDITS = EditStrengths()

MASTER_OVERSCAN = 1.25  # product photos are drawn larger than the output so crops stay sharp
SUPERSAMPLE = 2  # sprites are drawn at 2x and downsampled: anti-aliased edges and text
BACKGROUNDS = (("plain", 0.35), ("gradient", 0.2), ("studio", 0.15), ("wood", 0.12), ("checker", 0.08),
               ("marble", 0.1))

# Sprite frame (share of the sprite canvas) per shape: (width, height).
SHAPE_BOXES = {"bottle": (0.46, 0.92), "jar": (0.72, 0.7), "can": (0.5, 0.86), "tube": (0.46, 0.92),
               "box": (0.8, 0.84), "pouch": (0.66, 0.9), "phone_case": (0.48, 0.92), "shoe": (0.94, 0.46),
               "tshirt": (0.9, 0.88), "bag": (0.78, 0.86)}
SHAPE_LABEL_STYLES = {"bottle": ("band", "panel"), "jar": ("band", "panel", "oval"), "can": ("band", "oval"),
                      "tube": ("panel", "band"), "box": ("panel", "oval", "band"), "pouch": ("oval", "panel"),
                      "phone_case": ("print",), "shoe": ("print",), "tshirt": ("print",), "bag": ("print", "panel")}
CYLINDRICAL_SHAPES = frozenset({"bottle", "jar", "can", "tube"})
NEUTRAL_LABELS = ((250, 250, 248), (238, 228, 200))  # white and cream labels keep their colour across flavours

# --------------------------------------------------------------------------------------------------
# Plans: everything random is decided here, from one seeded generator, so rendering is a pure
# function of the plan (and parallel rendering cannot change the output).
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Look:
    """What a product looks like, independent of any photo of it."""

    shape: str
    body: RGB
    accent: RGB
    trim: RGB
    label_bg: RGB
    label_fg: RGB
    pattern: str
    pattern_period: float  # share of the sprite side
    pattern_angle: float
    label_style: str
    label_lines: tuple[str, ...]
    width: float  # product frame as share of the sprite canvas
    height: float
    texture_seed: int


@dataclass(frozen=True)
class Shot:
    """One photo set-up: background, where the product stands, how it is turned."""

    background: str
    bg_colours: tuple[RGB, RGB]
    bg_period: float
    bg_seed: int
    center: tuple[float, float]
    scale: float  # sprite side as share of the photo side
    tilt: float  # degrees
    squeeze: float  # horizontal foreshortening (turned product)
    shadow: bool


@dataclass(frozen=True)
class TitleParts:
    """The words a product's titles are built from."""

    brand: str
    line: str
    nouns: tuple[str, ...]  # spellings of the product noun, the first is the usual one
    variant: tuple[str, ...]  # spellings of what tells this product from its siblings
    extras: tuple[str, ...]
    descriptors: tuple[str, ...]


@dataclass(frozen=True)
class Product:
    """One label_group: its look, its usual photo, its title words and its family."""

    family: int
    category: Category
    look: Look
    shot: Shot
    title: TitleParts
    size: int  # number of listings


@dataclass(frozen=True)
class Shop:
    """A seller: the name on watermarks and frames, and title habits reused across products."""

    name: str
    colour: RGB
    framed: bool
    prefix: str | None


@dataclass(frozen=True)
class Sticker:
    text: str
    shape: str  # "burst" | "circle" | "tag"
    colour: RGB
    center: tuple[float, float]
    size: float  # share of the image side


@dataclass(frozen=True)
class Watermark:
    text: str
    style: str  # "center" | "corner" | "tiled"
    opacity: float
    colour: RGB


@dataclass(frozen=True)
class Edit:
    """One seller's version of the product photo; fractions are of the image side."""

    shots: tuple[Shot, ...]  # one shot, or four for a collage
    flip: bool
    rotate: float
    zoom: float
    zoom_at: tuple[float, float]  # where the crop sits in the free room, 0..1 per axis
    pad: float
    pad_colour: RGB
    frame: Shop | None
    watermark: Watermark | None
    stickers: tuple[Sticker, ...]
    brightness: float
    contrast: float
    saturation: float
    quality: int
    size: tuple[int, int]


@dataclass(frozen=True)
class Listing:
    """One row of train.csv / test.csv before its image is rendered."""

    posting_id: str
    image: str
    title: str
    label_group: int
    split: str
    edit: Edit


def _pick(rng: np.random.Generator, options: Sequence):
    """One element of ``options`` (keeps tuples intact, unlike ``rng.choice``)."""
    return options[int(rng.integers(len(options)))]


def _pick_weighted(rng: np.random.Generator, weighted: Sequence[tuple[object, float]]):
    """One value of ``(value, weight)`` pairs."""
    weights = np.array([w for _, w in weighted], dtype=float)
    return weighted[int(rng.choice(len(weighted), p=weights / weights.sum()))][0]


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def group_size_distribution() -> tuple[np.ndarray, np.ndarray]:
    """Group sizes and their probabilities: Kaggle's measured head plus a power-law tail."""
    head_sizes = np.array(list(GROUP_SIZE_SHARES), dtype=int)
    head_p = np.array(list(GROUP_SIZE_SHARES.values()), dtype=float)
    tail_sizes = np.arange(GROUP_SIZE_TAIL[0], GROUP_SIZE_TAIL[1] + 1)
    tail_w = tail_sizes.astype(float) ** -GROUP_SIZE_TAIL_EXPONENT
    tail_p = tail_w / tail_w.sum() * (1.0 - head_p.sum())
    return np.concatenate([head_sizes, tail_sizes]), np.concatenate([head_p, tail_p])


def sample_group_sizes(n_groups: int, rng: np.random.Generator) -> np.ndarray:
    """``n_groups`` listing counts per group, drawn like the real ones (never 1: Kaggle has no singletons)."""
    sizes, p = group_size_distribution()
    return rng.choice(sizes, size=n_groups, p=p)


def sample_family_sizes(n_groups: int, rng: np.random.Generator) -> list[int]:
    """Products per family, summing to ``n_groups`` (the last family is cut to fit)."""
    families: list[int] = []
    while sum(families) < n_groups:
        families.append(min(int(_pick_weighted(rng, tuple(FAMILY_SIZE_SHARES.items()))), n_groups - sum(families)))
    return families


# ---- colours ---------------------------------------------------------------------------------------


def _luma(rgb: RGB) -> float:
    """Grey level as PIL's convert("L") computes it: what the perceptual hash sees."""
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _hls_to_rgb(h: float, lightness: float, s: float) -> RGB:
    return tuple(int(round(c * 255)) for c in colorsys.hls_to_rgb(h % 1.0, lightness, s))


def _with_luma(h: float, s: float, target: float) -> RGB:
    """The colour of hue ``h`` and saturation ``s`` whose grey level is closest to ``target``."""
    lo, hi = 0.0, 1.0
    for _ in range(20):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _luma(_hls_to_rgb(h, mid, s)) < target else (lo, mid)
    return _hls_to_rgb(h, (lo + hi) / 2, s)


def _hue_turned(rgb: RGB, turn: float) -> RGB:
    """Hue turned by ``turn`` (0..1) with the grey level kept: same to phash, different to the eye."""
    h, _, s = colorsys.rgb_to_hls(*(c / 255 for c in rgb))
    return _with_luma(h + turn, s, _luma(rgb))


def _scaled(rgb: RGB, factor: float) -> RGB:
    return tuple(int(min(255, max(0, round(c * factor)))) for c in rgb)


def _random_colour(rng: np.random.Generator, sat=(0.35, 0.9), val=(0.35, 0.95)) -> RGB:
    rgb = colorsys.hsv_to_rgb(rng.random(), _uniform(rng, sat), _uniform(rng, val))
    return tuple(int(round(c * 255)) for c in rgb)


def _readable_on(bg: RGB) -> RGB:
    return (25, 25, 30) if _luma(bg) > 140 else (250, 250, 250)


def _jittered(rgb: RGB, rng: np.random.Generator, amount: int = 12) -> RGB:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)


# ---- products ----------------------------------------------------------------------------------------


def make_brand(rng: np.random.Generator) -> str:
    """An invented brand name ("Lumora", "Kisa Jaya")."""
    n = int(rng.choice([2, 2, 3]))
    word = "".join(_pick(rng, BRAND_SYLLABLES) for _ in range(n))
    return (word + _pick(rng, BRAND_SUFFIXES)).capitalize()


def _amount_spellings(amount: int, unit: str) -> tuple[str, ...]:
    """How sellers write one amount: 200gr, 200 gr, 200g, 1kg, 1 liter..."""
    if unit == "gr":
        if amount >= 1000:
            return (f"{amount // 1000}kg", f"{amount // 1000} kg", f"{amount}gr", f"{amount // 1000} Kg")
        return (f"{amount}gr", f"{amount} gr", f"{amount}g", f"{amount} gram", f"{amount}GR")
    if amount >= 1000:
        return (f"{amount // 1000}L", f"{amount // 1000} liter", f"{amount}ml", f"{amount // 1000} Ltr")
    return (f"{amount}ml", f"{amount} ml", f"{amount}ML", f"{amount} mL")


def _flavour_spellings(flavour: str) -> tuple[str, ...]:
    return (flavour, f"rasa {flavour.lower()}", flavour.upper())


def _base_look(category: Category, brand: str, line: str, variant_label: str, rng: np.random.Generator) -> Look:
    """A fresh product look: colours, pattern and label for the first product of a family."""
    shape = category.shape
    body = _random_colour(rng)
    if rng.random() < 0.5:
        accent = _random_colour(rng)
    else:
        accent = _scaled(body, _uniform(rng, (0.45, 0.7)))
    trim = _pick(rng, ((240, 240, 240), (30, 30, 34), (170, 172, 178), accent))
    label_bg = _pick(rng, (*NEUTRAL_LABELS, accent, _scaled(body, 1.3)))
    w, h = SHAPE_BOXES[shape]
    lines = (brand.upper(), line.upper(), variant_label) if shape not in ("phone_case", "shoe", "tshirt") else (brand,)
    return Look(
        shape=shape, body=body, accent=accent, trim=trim, label_bg=label_bg, label_fg=_readable_on(label_bg),
        pattern=str(_pick_weighted(rng, category.patterns)), pattern_period=_uniform(rng, (0.05, 0.25)),
        pattern_angle=float(_pick(rng, (0, 0, 45, 90, 135, 30))), label_style=_pick(rng, SHAPE_LABEL_STYLES[shape]),
        label_lines=lines, width=w * _uniform(rng, (0.92, 1.05)), height=h * _uniform(rng, (0.92, 1.05)),
        texture_seed=int(rng.integers(2**31)),
    )


def _recoloured(look: Look, colour: RGB, rng: np.random.Generator) -> Look:
    """The same look in another body colour (apparel, cases, shoes, bags come in colours)."""
    accent = look.accent if rng.random() < 0.5 else _scaled(colour, 0.6)
    return replace(look, body=colour, accent=accent)


def _hue_variant(look: Look, turn: float) -> Look:
    """Another flavour: body, accent and coloured label turned in hue, grey levels kept."""
    label_bg = look.label_bg if look.label_bg in NEUTRAL_LABELS else _hue_turned(look.label_bg, turn)
    return replace(look, body=_hue_turned(look.body, turn), accent=_hue_turned(look.accent, turn), label_bg=label_bg)


def _nearby_colour_names(name: str, k: int = 4) -> list[str]:
    """Named colours closest in grey level to ``name`` (variants that fool the greyscale hash)."""
    target = _luma(COLOURS[name][0])
    others = sorted((abs(_luma(rgb) - target), n) for n, (rgb, _) in COLOURS.items() if n != name)
    return [n for _, n in others[:k]]


def plan_main_shot(rng: np.random.Generator) -> Shot:
    """The product's usual photo: centred, upright, on a (mostly light) background."""
    center = (0.5 + _uniform(rng, (-0.04, 0.04)), 0.5 + _uniform(rng, (-0.04, 0.04)))
    return replace(plan_background(rng), center=center,
                   scale=_uniform(rng, (0.85, 1.05)), shadow=bool(rng.random() < 0.5))


def plan_alt_shot(rng: np.random.Generator) -> Shot:
    """A different photo of the same product: other background, off-centre, turned and tilted."""
    center = (0.5 + _uniform(rng, (-0.14, 0.14)), 0.5 + _uniform(rng, (-0.1, 0.1)))
    return replace(plan_background(rng), center=center,
                   scale=_uniform(rng, (0.6, 0.95)), tilt=_uniform(rng, (-25, 25)),
                   squeeze=_uniform(rng, (0.7, 1.0)), shadow=bool(rng.random() < 0.7))


def plan_background(rng: np.random.Generator) -> Shot:
    """A background set-up (position fields at their neutral values, set by the callers)."""
    kind = str(_pick_weighted(rng, BACKGROUNDS))
    light = _random_colour(rng, sat=(0.0, 0.15), val=(0.88, 1.0))
    colours = {
        "plain": (light, light),
        "gradient": (_random_colour(rng, (0.1, 0.4), (0.8, 1.0)), _random_colour(rng, (0.1, 0.4), (0.75, 1.0))),
        "studio": (light, _scaled(light, 0.85)),
        "wood": (_random_colour(rng, (0.4, 0.6), (0.45, 0.65)), _random_colour(rng, (0.4, 0.7), (0.3, 0.45))),
        "checker": (light, _random_colour(rng, (0.3, 0.7), (0.6, 0.9))),
        "marble": ((235, 235, 232), _random_colour(rng, (0.0, 0.1), (0.55, 0.8))),
    }[kind]
    return Shot(background=kind, bg_colours=colours, bg_period=_uniform(rng, (0.08, 0.3)),
                bg_seed=int(rng.integers(2**31)), center=(0.5, 0.5), scale=1.0, tilt=0.0, squeeze=1.0, shadow=False)


def _variant_of(category: Category, kind: str, taken: list,
                rng: np.random.Generator) -> tuple[object, tuple[str, ...], str]:
    """A variant value not yet used in the family: (value, title spellings, label text).

    Colour siblings take a named colour of similar grey level to the first product's.
    """
    if kind == "amount":
        value = _pick(rng, [a for a in category.amounts if a not in taken] or list(category.amounts))
        spellings = _amount_spellings(value, category.unit)
        return value, spellings, spellings[0].upper()
    if kind == "flavour":
        value = _pick(rng, [f for f in category.flavours if f not in taken] or list(category.flavours))
        return value, _flavour_spellings(value), value.upper()
    if kind == "model":
        value = _pick(rng, [m for m in PHONE_MODELS if m not in taken])
        return value, (value, value.replace(" ", ""), value.upper()), value
    candidates = _nearby_colour_names(taken[0]) if taken else list(COLOURS)
    value = _pick(rng, [c for c in candidates if c not in taken] or [c for c in COLOURS if c not in taken])
    return value, COLOURS[value][1], value.upper()


def _sibling_look(base: Look, kind: str, label: str, rng: np.random.Generator) -> Look:
    """A sibling's look: the base look with another label text and the family's kind of change."""
    look = replace(base, label_lines=(*base.label_lines[:-1], label)) if len(base.label_lines) > 1 else base
    if kind == "amount":
        factor = _uniform(rng, (0.82, 1.1))
        return replace(look, width=look.width * factor, height=look.height * factor)
    if kind == "flavour":
        return _hue_variant(look, _uniform(rng, (0.15, 0.85)))
    return look  # "model": the very same image; "colour" is recoloured by the caller


def plan_family(family: int, sizes: Sequence[int], brand: str, rng: np.random.Generator) -> list[Product]:
    """The products of one family: a base product and its siblings (hard negatives).

    Siblings keep the brand, product line, shape, pattern and usual photo set-up, and differ in
    what the category varies: amount (label text and pack size), flavour (label text and hue,
    grey levels kept), colour (a named colour of similar grey level) or phone model (same image!).
    """
    category: Category = _pick(rng, CATEGORIES)
    kind = str(_pick_weighted(rng, category.variant_kinds))
    line = _pick(rng, PRODUCT_LINES)
    nouns = _pick(rng, category.nouns)
    extras = tuple(str(e) for e in rng.choice(category.extras, size=int(rng.integers(1, 3)), replace=False))
    descriptors = tuple(str(d) for d in rng.choice(DESCRIPTORS, size=int(rng.integers(0, 3)), replace=False))
    shot = plan_main_shot(rng)
    taken: list = []
    products: list[Product] = []
    for size in sizes:
        value, spellings, label = _variant_of(category, kind, taken, rng)
        if products:
            look = _sibling_look(products[0].look, kind, label, rng)
        else:
            look = _base_look(category, brand, line, label, rng)
        if kind == "colour":
            look = _recoloured(look, _jittered(COLOURS[value][0], rng, 6), rng)
        taken.append(value)
        title = TitleParts(brand=brand, line=line, nouns=nouns, variant=spellings, extras=extras,
                           descriptors=descriptors)
        products.append(Product(family=family, category=category, look=look, shot=shot, title=title, size=int(size)))
    return products


# ---- titles ----------------------------------------------------------------------------------------


def _typo(word: str, rng: np.random.Generator) -> str:
    """One keyboard slip: a dropped, doubled or swapped letter."""
    if len(word) < 4 or not word.isalpha():
        return word
    i = int(rng.integers(1, len(word) - 1))
    kind = int(rng.integers(3))
    if kind == 0:
        return word[:i] + word[i + 1:]
    if kind == 1:
        return word[:i] + word[i] + word[i:]
    return word[:i - 1] + word[i] + word[i - 1] + word[i + 1:]


def _cased(text: str, casing: str) -> str:
    return {"asis": text, "upper": text.upper(), "lower": text.lower(), "title": text.title()}[casing]


def _truncated(text: str, rng: np.random.Generator) -> str:
    """Cut at a word boundary, as when a seller pastes into a short field."""
    limit = int(rng.integers(22, 45))
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(" -|/,([")


def make_title(parts: TitleParts, shop: Shop, rng: np.random.Generator) -> str:
    """One listing's title: the product's words, reordered, decorated and misspelt like a seller would."""
    if rng.random() < TITLE_P_GENERIC:
        segments = [parts.nouns[0], *parts.extras[:1], _pick(rng, PROMO_SUFFIXES)]
    else:
        noun = _pick(rng, parts.nouns) if rng.random() < TITLE_P_NOUN_SYNONYM else parts.nouns[0]
        brand = [parts.brand] if rng.random() < TITLE_P_BRAND else []
        line = [parts.line] if rng.random() < TITLE_P_LINE else []
        variant = [_pick(rng, parts.variant)] if rng.random() < TITLE_P_VARIANT else []
        if variant and rng.random() < TITLE_P_BRACKETS:
            variant = [f"[{variant[0]}]"]
        extras = [e for e in parts.extras if rng.random() < TITLE_P_EXTRA]
        descriptors = [d for d in parts.descriptors if rng.random() < TITLE_P_DESCRIPTOR]
        segments = [*brand, *line, noun, *variant, *extras, *descriptors]
        if rng.random() < TITLE_P_REORDER:
            moved = segments.pop(int(rng.integers(len(segments))))
            segments.insert(int(rng.integers(len(segments) + 1)), moved)
    if shop.prefix and rng.random() < 0.7:
        segments.insert(0, shop.prefix)
    elif rng.random() < TITLE_P_PREFIX:
        segments.insert(0, _pick(rng, PROMO_PREFIXES))
    if rng.random() < TITLE_P_SUFFIX:
        segments.append(_pick(rng, PROMO_SUFFIXES))
    text = segments[0]
    for seg in segments[1:]:
        text += str(_pick_weighted(rng, SEPARATORS)) + seg
    words = [_typo(w, rng) if rng.random() < TITLE_P_TYPO else w for w in text.split()]
    text = _cased(" ".join(words), str(_pick_weighted(rng, TITLE_CASINGS)))
    return _truncated(text, rng) if rng.random() < TITLE_P_TRUNCATE else text


# ---- shops and edits -------------------------------------------------------------------------------


def make_shops(n: int, edits: EditStrengths, rng: np.random.Generator) -> list[Shop]:
    """Sellers; a shop's frame, watermark name and title prefix recur across its products."""
    shops = []
    for _ in range(n):
        word = _pick(rng, SHOP_WORDS)
        brand = make_brand(rng)
        name = _pick(rng, (f"{word}{brand.lower()}", f"{word} {brand}", f"{brand.lower()}.{word}",
                           f"{word}{brand.lower()}{rng.integers(1, 99)}"))
        prefix = _pick(rng, PROMO_PREFIXES) if rng.random() < 0.25 else None
        shops.append(Shop(name=name, colour=_random_colour(rng, (0.5, 0.9), (0.4, 0.8)),
                          framed=bool(rng.random() < edits.p_frame_shop), prefix=prefix))
    return shops


def _output_size(image_size: int, edits: EditStrengths, rng: np.random.Generator) -> tuple[int, int]:
    """Mostly square, a few hundred pixels; about 1% non-square."""
    side = round(image_size * float(_pick_weighted(rng, edits.side_factors)))
    if rng.random() < edits.p_non_square:
        return side, round(side * _uniform(rng, (0.6, 0.85)))
    return side, side


def _plan_sticker(corner: tuple[float, float], edits: EditStrengths, rng: np.random.Generator) -> Sticker:
    return Sticker(text=_pick(rng, STICKER_TEXTS), shape=_pick(rng, ("burst", "circle", "tag")),
                   colour=_pick(rng, STICKER_COLOURS), center=corner, size=_uniform(rng, edits.sticker_size))


def _photometric(edits: EditStrengths, rng: np.random.Generator) -> dict:
    """Brightness, contrast, saturation and JPEG quality of one upload."""
    return {
        "brightness": 1 + _uniform(rng, (-edits.brightness, edits.brightness)),
        "contrast": 1 + _uniform(rng, (-edits.contrast, edits.contrast)),
        "saturation": 1 + _uniform(rng, (-edits.saturation, edits.saturation)),
        "quality": int(rng.integers(edits.jpeg_quality[0], edits.jpeg_quality[1] + 1)),
    }


def plan_edit(product: Product, shop: Shop, image_size: int, edits: EditStrengths, rng: np.random.Generator) -> Edit:
    """What one seller did to the product photo before uploading it."""
    if rng.random() < edits.p_collage:
        shots = (product.shot, plan_alt_shot(rng), plan_alt_shot(rng), plan_alt_shot(rng))
    elif rng.random() < edits.p_reshoot:
        shots = (plan_alt_shot(rng),)
    else:
        shots = (product.shot,)
    watermark = None
    if rng.random() < edits.p_watermark:
        watermark = Watermark(text=shop.name, style=_pick(rng, ("center", "corner", "corner", "tiled")),
                              opacity=_uniform(rng, edits.watermark_opacity),
                              colour=_pick(rng, ((255, 255, 255), (40, 40, 40), shop.colour)))
    n_stickers = int(rng.integers(1, 3)) if rng.random() < edits.p_sticker else 0
    return Edit(
        shots=shots,
        flip=bool(rng.random() < edits.p_flip),
        rotate=_uniform(rng, edits.rotate_deg) * _pick(rng, (-1, 1)) if rng.random() < edits.p_rotate else 0.0,
        zoom=_uniform(rng, edits.zoom) if rng.random() < edits.p_zoom else 0.0,
        zoom_at=(float(rng.random()), float(rng.random())),
        pad=_uniform(rng, edits.pad) if rng.random() < edits.p_pad else 0.0,
        pad_colour=(255, 255, 255) if rng.random() < 0.6 else shop.colour,
        frame=shop if shop.framed and rng.random() < 0.85 else None,
        watermark=watermark,
        stickers=tuple(_plan_sticker(STICKER_CORNERS[c], edits, rng) for c in rng.permutation(4)[:n_stickers]),
        size=_output_size(image_size, edits, rng),
        **_photometric(edits, rng),
    )


# ---- the whole plan ----------------------------------------------------------------------------------


def _unique_ints(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    """``n`` distinct integers in [low, high), in random order."""
    values = np.unique(rng.integers(low, high, size=n * 2 + 16))
    while len(values) < n:
        values = np.unique(np.concatenate([values, rng.integers(low, high, size=n)]))
    return rng.permutation(values)[:n]


def split_families(products: Sequence[Product], test_fraction: float, rng: np.random.Generator) -> list[str]:
    """"train"/"test" per product, families kept together (so hard negatives stay hard).

    Products are lined up family by family in random family order and the first
    round(test_fraction * n) go to test: exact counts, at most one family cut in two.
    """
    n_test = min(len(products) - 1, max(1, round(test_fraction * len(products))))
    families = rng.permutation(sorted({p.family for p in products}))
    rank = {int(f): r for r, f in enumerate(families)}
    order = sorted(range(len(products)), key=lambda i: (rank[products[i].family], i))
    splits = ["train"] * len(products)
    for i in order[:n_test]:
        splits[i] = "test"
    return splits


def plan_group(product: Product, split: str, label: int, posting_ids: Sequence[str], shops: Sequence[Shop],
               sibling_titles: Sequence[str], image_size: int, edits: EditStrengths,
               rng: np.random.Generator) -> list[Listing]:
    """The listings of one product: each by some shop, with its own title and photo.

    A photo is a fresh seller edit, a re-post of an earlier listing's photo (re-encoded, so the
    hash barely moves) or, rarely, the very same image file. A title is occasionally copied
    verbatim from a sibling product (``sibling_titles``), as sellers do across variants.
    """
    group: list[Listing] = []
    for pid in posting_ids:
        shop = _pick(rng, shops)
        title = make_title(product.title, shop, rng)
        if sibling_titles and rng.random() < TITLE_P_COPY_SIBLING:
            title = _pick(rng, sibling_titles)
        roll = rng.random()
        if group and roll < edits.p_same_file:
            source = _pick(rng, group)
            image, edit = source.image, source.edit
        elif group and roll < edits.p_same_file + edits.p_repost:
            image, edit = rng.bytes(16).hex() + ".jpg", replace(_pick(rng, group).edit, **_photometric(edits, rng))
        else:
            image, edit = rng.bytes(16).hex() + ".jpg", plan_edit(product, shop, image_size, edits, rng)
        group.append(Listing(posting_id=pid, image=image, title=title, label_group=label, split=split, edit=edit))
    return group


def plan_sample(n_groups: int, test_fraction: float, image_size: int, seed: int,
                edits: EditStrengths = DEFAULT_EDITS) -> tuple[list[Product], list[list[Listing]]]:
    """Every product and listing of the sample, with ids, titles and edits; no pixels yet."""
    rng = np.random.default_rng(seed)
    sizes = sample_group_sizes(n_groups, rng)
    brands: list[str] = []
    products: list[Product] = []
    for family, n_products in enumerate(sample_family_sizes(n_groups, rng)):
        brand = _pick(rng, brands) if brands and rng.random() < 0.1 else make_brand(rng)
        brands.append(brand)
        first = len(products)
        products += plan_family(family, sizes[first:first + n_products], brand, rng)
    splits = split_families(products, test_fraction, rng)
    shops = make_shops(max(4, n_groups // 3), edits, rng)
    n_listings = int(sizes.sum())
    ids = _unique_ints(rng, n_listings, 10_000_000, 4_294_967_295)
    labels = _unique_ints(rng, n_groups, 1_000_000, 4_294_967_295)
    listings: list[list[Listing]] = []
    family_titles: dict[int, list[str]] = {}  # family -> titles of its first product
    start = 0
    for product, split, label in zip(products, splits, labels):
        pids = [f"{split}_{i}" for i in ids[start:start + product.size]]
        start += product.size
        group = plan_group(product, split, int(label), pids, shops, family_titles.get(product.family, []),
                           image_size, edits, rng)
        family_titles.setdefault(product.family, [lst.title for lst in group])
        listings.append(group)
    return products, listings


# --------------------------------------------------------------------------------------------------
# Rendering: pure functions of the plan
# --------------------------------------------------------------------------------------------------


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
            render_listing(sprite, edit, master_side, shots).save(path, "JPEG", quality=edit.quality)
            with Image.open(path) as saved:
                written[path] = str(imagehash.phash(saved))
    return [written[path] for _, path in jobs]


# --------------------------------------------------------------------------------------------------
# Writing the Kaggle layout
# --------------------------------------------------------------------------------------------------


def _check_out_dir(out: Path, names: set[str]) -> None:
    """Refuse to mix this sample's images with another dataset's in the same folders."""
    for sub in ("train_images", "test_images"):
        folder = out / sub
        if folder.is_dir():
            strangers = [p.name for p in folder.iterdir() if p.name not in names]
            if strangers:
                raise FileExistsError(
                    f"{folder} already holds {len(strangers)} files that are not part of this sample "
                    f"(e.g. {strangers[0]}); generate into an empty directory or delete that folder.")


def write_split(out: Path, rows: pd.DataFrame, split: str) -> None:
    """``{split}.csv`` in Kaggle's column order, rows sorted by image name as Kaggle's are."""
    columns = ["posting_id", "image", "image_phash", "title"] + (["label_group"] if split == "train" else [])
    rows = rows.sort_values("image", kind="stable")
    rows[columns].to_csv(out / f"{split}.csv", index=False, lineterminator="\n")
    if split == "test":
        ids = rows["posting_id"]
        pd.DataFrame({"posting_id": ids, "matches": ids}).to_csv(
            out / "sample_submission.csv", index=False, lineterminator="\n")
        truth = rows.groupby("label_group", sort=False)["posting_id"].agg(" ".join)
        pd.DataFrame({"posting_id": ids, "matches": rows["label_group"].map(truth)}).to_csv(
            out / "test_solution.csv", index=False, lineterminator="\n")


def _render_all(tasks: list, n_images: int, workers: int, progress: bool) -> list[list[str]]:
    """Run :func:`render_group` over all products, in a pool of ``workers`` processes if > 1."""
    bar = tqdm(total=n_images, desc="rendering sample images", unit="img", disable=not progress)
    results = []
    if workers > 1:
        with multiprocessing.get_context().Pool(workers) as pool:
            for hashes in pool.imap(render_group, tasks, chunksize=4):
                results.append(hashes)
                bar.update(len(hashes))
    else:
        for task in tasks:
            results.append(render_group(task))
            bar.update(len(results[-1]))
    bar.close()
    return results


def generate_sample(out_dir, *, n_groups: int = 450, test_fraction: float = 0.3, image_size: int = 256,
                    seed: int = 0, progress: bool = True, workers: int = 2,
                    edits: EditStrengths = DEFAULT_EDITS) -> dict:
    """Write a synthetic Shopee-like dataset into ``out_dir`` in Kaggle's layout; return a summary.

    Files: train.csv, train_images/, test.csv, test_images/, sample_submission.csv (self matches)
    and test_solution.csv (the true groups of test, to score a submission). Train and test have
    disjoint groups. Same arguments give byte-identical CSVs and images. The CSVs are written
    last, so a folder with train.csv holds a complete sample.
    """
    if n_groups < 2:
        raise ValueError(f"n_groups={n_groups}: need at least 2 groups (one for train, one for test)")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction={test_fraction}: must be strictly between 0 and 1")
    if image_size < 32:
        raise ValueError(f"image_size={image_size}: use at least 32 pixels")
    start = time.perf_counter()
    out = Path(out_dir)
    products, groups = plan_sample(n_groups, test_fraction, image_size, seed, edits)
    listings = [lst for group in groups for lst in group]
    _check_out_dir(out, {lst.image for lst in listings})
    for split in ("train", "test"):
        (out / f"{split}_images").mkdir(parents=True, exist_ok=True)
    master_side = round(image_size * MASTER_OVERSCAN)
    tasks = [(p.look, [(lst.edit, str(out / f"{lst.split}_images" / lst.image)) for lst in group], master_side)
             for p, group in zip(products, groups)]
    hashes = [h for group_hashes in _render_all(tasks, len(listings), workers, progress) for h in group_hashes]
    table = pd.DataFrame({
        "posting_id": [lst.posting_id for lst in listings], "image": [lst.image for lst in listings],
        "image_phash": hashes, "title": [lst.title for lst in listings],
        "label_group": [lst.label_group for lst in listings], "split": [lst.split for lst in listings],
    })
    for split in ("train", "test"):
        write_split(out, table[table["split"] == split], split)
    counts = table.groupby("split")["label_group"].agg(["size", "nunique"])
    return {
        "n_train": int(counts.loc["train", "size"]), "n_test": int(counts.loc["test", "size"]),
        "n_groups_train": int(counts.loc["train", "nunique"]), "n_groups_test": int(counts.loc["test", "nunique"]),
        "seconds": round(time.perf_counter() - start, 2),
    }


def main(argv: Sequence[str] | None = None) -> dict:
    """CLI: ``python -m samesame.sample OUT_DIR [--groups N] [--seed S] [--image-size PX]``."""
    parser = argparse.ArgumentParser(prog="python -m samesame.sample",
                                     description="Generate the synthetic Shopee-like sample in Kaggle's layout.")
    parser.add_argument("out_dir", help="folder to write train.csv, test.csv, *_images/ ... into")
    parser.add_argument("--groups", type=int, default=450, help="number of products (label groups), default 450")
    parser.add_argument("--seed", type=int, default=0, help="random seed, default 0")
    parser.add_argument("--image-size", type=int, default=256, help="typical image side in pixels, default 256")
    parser.add_argument("--test-fraction", type=float, default=0.3, help="share of groups put in test, default 0.3")
    parser.add_argument("--workers", type=int, default=2, help="rendering processes, default 2")
    args = parser.parse_args(argv)
    summary = generate_sample(args.out_dir, n_groups=args.groups, seed=args.seed, image_size=args.image_size,
                              test_fraction=args.test_fraction, workers=args.workers)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
