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

Modules, each importing only those above it:

* ``catalogue`` -- the constant tables and the difficulty knobs: :data:`~.catalogue.DEFAULT_EDITS`
  (image edits, the phash-vs-CNN balance), the ``TITLE_*`` probabilities (TF-IDF difficulty) and
  :data:`~.catalogue.FAMILY_SIZE_SHARES` (how many hard negatives there are);
* ``records`` -- the frozen records of a plan (product, look, shot, shop, edit, listing);
* ``chance`` -- the seeded picks planning and titles share; ``colours`` -- the colour arithmetic
  planning and drawing share (grey level, shades, readable text colour);
* ``titles`` -- writing one listing's title; ``plan`` -- every random choice (:func:`plan_sample`);
* ``sprite`` -- drawing a product alone; ``render`` -- drawing, saving and hashing a listing's photo;
* ``write`` -- the Kaggle layout on disk (:func:`generate_sample`); ``cli`` -- :func:`main`.

Imports numpy, pandas, PIL, imagehash and tqdm, and of samesame only core.files (every file written whole).

Usage: ``generate_sample(out_dir)`` or ``python -m samesame.data.sample OUT_DIR [--groups N] [--seed S]``.
"""

from samesame.data.sample.cli import main
from samesame.data.sample.plan import group_size_distribution, plan_sample, sample_group_sizes
from samesame.data.sample.write import generate_sample

__all__ = ["generate_sample", "group_size_distribution", "main", "plan_sample", "sample_group_sizes"]
