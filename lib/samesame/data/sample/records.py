"""The frozen records a plan is made of (product, look, shot, shop, edit, listing): shared by planning and drawing."""

from __future__ import annotations

from dataclasses import dataclass

from samesame.data.sample.catalogue import RGB, Category


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
