import imagehash
import pandas as pd
import pytest
from PIL import Image

from samesame.data.listings import load_dataset
from samesame.image.phash import example_pairs, hamming, listing_phashes, phash_codes


def test_codes_and_hamming_known_answers():
    codes = phash_codes(["0000000000000000", "ff00000000000001"])
    assert codes.shape == (2, 8) and codes[1, 0] == 255 and codes[1, 7] == 1
    assert hamming("0000000000000000", "ff00000000000001") == 9
    with pytest.raises(ValueError, match="16 hex"):
        phash_codes(["zz"])


def test_image_hash_wins_over_csv_when_image_is_readable(tiny_kaggle):
    ds = load_dataset(tiny_kaggle)
    out = listing_phashes(ds.train, progress=False)
    assert out["source"].tolist() == ["image", "image"] + ["csv"] * 5
    expected = str(imagehash.phash(Image.open(ds.train["image_path"].iloc[0]).convert("RGB")))
    assert out["phash"].iloc[0] == expected
    assert out["phash"].iloc[3] == ds.train["image_phash"].iloc[3]


def test_unreadable_image_falls_back_to_csv(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    df = pd.DataFrame({"image_path": [str(bad)], "image_phash": ["0123456789abcdef"]})
    assert listing_phashes(df, progress=False).iloc[0].tolist() == ["0123456789abcdef", "csv"]


def test_example_pairs_pick_closest_and_farthest():
    hashes = ["0000000000000000", "0000000000000001", "0000000000000000", "ffffffffffffffff", "1234567890abcdef"]
    pairs = example_pairs([1, 1, 2, 2, 3], hashes)
    assert pairs["similar"] == (0, 1, 1) and pairs["dissimilar"] == (2, 3, 64)


def test_real_images_reproduce_the_csv_phash(shopee_dev):
    ds = load_dataset(shopee_dev)
    with_images = ds.train[ds.train["image_path"].notna()]
    assert len(with_images) >= 20
    computed = listing_phashes(with_images, progress=False)
    assert (computed["source"] == "image").all()
    distances = [hamming(a, b) for a, b in zip(computed["phash"], with_images["image_phash"])]
    assert sum(d > 0 for d in distances) <= 1, distances
    assert max(distances) <= 2
