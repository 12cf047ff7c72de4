"""What the sample is made of: categories, brands, words, colours, shapes, and the difficulty knobs.

Constant tables only (plus the two dataclasses that describe them), so a reader or a tuner finds every
number that shapes the sample in one place: group and family sizes, the ``TITLE_*`` probabilities
(TF-IDF difficulty) and :data:`DEFAULT_EDITS` (image edits, the phash-vs-CNN balance).
"""

from __future__ import annotations

from dataclasses import dataclass

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
