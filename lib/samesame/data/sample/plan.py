"""Planning: every random choice of the sample (groups, families, looks, shots, shops, edits, titles, ids).

Everything random is decided here, from one seeded generator, so rendering is a pure function of the
plan (and parallel rendering cannot change the output).
"""

from __future__ import annotations

import colorsys
from dataclasses import replace
from typing import Sequence

import numpy as np

from samesame.data.sample.catalogue import (
    BACKGROUNDS,
    BRAND_SUFFIXES,
    BRAND_SYLLABLES,
    CATEGORIES,
    COLOURS,
    DEFAULT_EDITS,
    DESCRIPTORS,
    FAMILY_SIZE_SHARES,
    GROUP_SIZE_SHARES,
    GROUP_SIZE_TAIL,
    GROUP_SIZE_TAIL_EXPONENT,
    NEUTRAL_LABELS,
    PHONE_MODELS,
    PRODUCT_LINES,
    PROMO_PREFIXES,
    RGB,
    SHAPE_BOXES,
    SHAPE_LABEL_STYLES,
    SHOP_WORDS,
    STICKER_COLOURS,
    STICKER_CORNERS,
    STICKER_TEXTS,
    TITLE_P_COPY_SIBLING,
    Category,
    EditStrengths,
)
from samesame.data.sample.chance import _pick, _pick_weighted
from samesame.data.sample.colours import _luma, _readable_on, _scaled
from samesame.data.sample.records import Edit, Listing, Look, Product, Shop, Shot, Sticker, TitleParts, Watermark
from samesame.data.sample.titles import make_title


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


# ---- group and family structure ----------------------------------------------------------------------


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


def _random_colour(rng: np.random.Generator, sat=(0.35, 0.9), val=(0.35, 0.95)) -> RGB:
    rgb = colorsys.hsv_to_rgb(rng.random(), _uniform(rng, sat), _uniform(rng, val))
    return tuple(int(round(c * 255)) for c in rgb)


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
