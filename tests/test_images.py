"""Every kind of bad image file a scraped marketplace dump contains, generated in tmp_path."""

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samesame.image import images
from samesame.image.images import STATUSES, count_statuses, is_usable, load_array, open_rgb

RED = (255, 0, 0)


def _save(img: Image.Image, path: Path, **kwargs) -> Path:
    img.save(path, **kwargs)
    return path


def _jpeg_bytes(size=(64, 64), **kwargs) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(buf, "JPEG", **kwargs)
    return buf.getvalue()


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims width x height: PIL reads only up to the first IDAT on open."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")))
    return path


@pytest.fixture(scope="module")
def huge_jpeg(tmp_path_factory) -> Path:
    """12000x12000 (144 Mpx, past PIL's bomb warning): left half red, right half blue."""
    img = Image.new("RGB", (12000, 12000), (0, 0, 255))
    img.paste(RED, (0, 0, 6000, 12000))
    return _save(img, tmp_path_factory.mktemp("huge") / "huge.jpg", quality=50)


# --- statuses for files that cannot be used ---------------------------------


@pytest.mark.parametrize("path", [None, float("nan"), ""])
def test_no_path_is_missing(path):
    assert open_rgb(path) == (None, "missing")


def test_nonexistent_file_and_directory_are_missing(tmp_path):
    assert open_rgb(tmp_path / "nope.jpg") == (None, "missing")
    assert open_rgb(tmp_path) == (None, "missing")


def test_zero_byte_file_is_empty(tmp_path):
    path = tmp_path / "zero.jpg"
    path.touch()
    assert open_rgb(path) == (None, "empty")


def test_text_file_named_jpg_is_unreadable(tmp_path):
    path = tmp_path / "fake.jpg"
    path.write_text("<html>404 not found</html>")
    assert open_rgb(path) == (None, "unreadable")


def test_jpeg_cut_inside_header_is_unreadable(tmp_path):
    path = tmp_path / "stub.jpg"
    path.write_bytes(_jpeg_bytes()[:20])
    assert open_rgb(path) == (None, "unreadable")


def test_truncated_png_is_unreadable(tmp_path):
    data = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(data, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    assert open_rgb(path) == (None, "unreadable")


def test_header_beyond_pil_bomb_limit_is_too_large_without_decoding(tmp_path):
    assert open_rgb(_png_header_only(tmp_path / "bomb.png", 20000, 20000)) == (None, "too_large")


def test_non_jpeg_over_pixel_budget_is_too_large(tmp_path):
    side = int(images.MAX_DECODE_PIXELS**0.5) + 1
    assert open_rgb(_png_header_only(tmp_path / "big.png", side, side)) == (None, "too_large")


# --- files that decode, in awkward formats ---------------------------------


@pytest.mark.parametrize("progressive", [False, True])
def test_truncated_jpeg_is_loaded_and_flagged(tmp_path, progressive):
    data = _jpeg_bytes(size=(200, 200), quality=90, progressive=progressive)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    img, status = open_rgb(path)
    assert status == "truncated"
    assert img.mode == "RGB" and img.size == (200, 200)


def test_intact_jpeg_is_ok_and_rgb(tmp_path):
    path = tmp_path / "fine.jpg"
    path.write_bytes(_jpeg_bytes(size=(80, 60)))
    img, status = open_rgb(path)
    assert status == "ok" and img.mode == "RGB" and img.size == (80, 60)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = _save(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), tmp_path / "cmyk.jpg", quality=95)
    img, status = open_rgb(path)
    assert status == "ok" and img.mode == "RGB"
    r, g, b = np.asarray(img).reshape(-1, 3).mean(axis=0)
    assert r > 230 and g < 30 and b < 30


def test_grayscale_becomes_three_equal_channels(tmp_path):
    path = _save(Image.new("L", (32, 32), 90), tmp_path / "grey.jpg")
    arr = np.asarray(open_rgb(path)[0])
    assert arr.shape == (32, 32, 3)
    assert np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2])


def test_16bit_grayscale_png_is_rescaled_not_clipped(tmp_path):
    path = _save(Image.fromarray(np.full((16, 16), 32768, dtype=np.uint16)), tmp_path / "deep.png")
    arr = np.asarray(open_rgb(path)[0])
    assert 120 <= arr.mean() <= 135


def test_palette_png_transparency_composited_on_white(tmp_path):
    img = Image.new("P", (20, 10), 0)
    img.putpalette([0, 0, 0, *RED] + [0] * (256 - 2) * 3)
    img.paste(1, (10, 0, 20, 10))  # right half opaque red, left half transparent index 0 (black)
    path = _save(img, tmp_path / "pal.png", transparency=0)
    arr = np.asarray(open_rgb(path)[0])
    assert tuple(arr[5, 2]) == (255, 255, 255)
    assert tuple(arr[5, 15]) == RED


def test_rgba_png_alpha_blended_on_white(tmp_path):
    rgba = np.zeros((10, 30, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red everywhere; alpha 0 | 128 | 255 in thirds
    rgba[:, 10:20, 3] = 128
    rgba[:, 20:, 3] = 255
    path = _save(Image.fromarray(rgba, "RGBA"), tmp_path / "alpha.png")
    arr = np.asarray(open_rgb(path)[0]).astype(int)
    assert tuple(arr[5, 5]) == (255, 255, 255)
    assert arr[5, 15, 0] == 255 and 120 <= arr[5, 15, 1] <= 135
    assert tuple(arr[5, 25]) == RED


def test_exif_orientation_is_applied(tmp_path):
    stored = Image.new("RGB", (60, 40), (0, 0, 255))
    stored.paste(RED, (0, 0, 10, 10))  # marker at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = _save(stored, tmp_path / "rotated.jpg", exif=exif, quality=95)
    img, status = open_rgb(path)
    assert status == "ok" and img.size == (40, 60)
    top_right = np.asarray(img)[2, 37]
    assert top_right[0] > 200 and top_right[2] < 60


# --- size handling ------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_huge_jpeg_decodes_cheaply_with_max_side(huge_jpeg):
    img, status = open_rgb(huge_jpeg, max_side=256)
    assert status == "ok" and max(img.size) == 256
    arr = np.asarray(img)
    assert arr[128, 10, 0] > 200 and arr[128, 245, 2] > 200  # halves stay in place


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_huge_jpeg_without_max_side_is_reported_not_decoded(huge_jpeg):
    assert open_rgb(huge_jpeg) == (None, "too_large")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_load_array_huge_jpeg(huge_jpeg):
    arr, status = load_array(huge_jpeg, 64)
    assert status == "ok" and arr.shape == (64, 64, 3) and arr.dtype == np.uint8


def test_open_rgb_max_side_keeps_aspect(tmp_path):
    path = _save(Image.new("RGB", (400, 200), RED), tmp_path / "wide.png")
    assert open_rgb(path, max_side=100)[0].size == (100, 50)


def test_load_array_squashes_whole_image_without_crop(tmp_path):
    img = Image.new("RGB", (300, 100), RED)
    img.paste((0, 0, 255), (200, 0, 300, 100))  # right third blue: a centre crop would lose it
    arr, status = load_array(_save(img, tmp_path / "wide.png"), 30)
    assert status == "ok" and arr.shape == (30, 30, 3) and arr.dtype == np.uint8
    assert arr[15, 28, 2] == 255 and arr[15, 2, 0] == 255


def test_load_array_unusable_gives_grey_placeholder(tmp_path):
    arr, status = load_array(tmp_path / "nope.jpg", 16)
    assert status == "missing"
    assert arr.shape == (16, 16, 3) and arr.dtype == np.uint8 and (arr == images.PLACEHOLDER_GREY).all()


# --- reporting ------------------------------------------------------------------


def test_count_statuses_includes_zeros():
    counts = count_statuses(["ok", "ok", "missing"])
    assert list(counts) == list(STATUSES)
    assert counts["ok"] == 2 and counts["missing"] == 1 and counts["empty"] == 0


def test_count_statuses_rejects_unknown_status():
    with pytest.raises(ValueError, match="'bogus'"):
        count_statuses(["ok", "bogus"])


def test_is_usable():
    assert is_usable(["ok", "truncated", "missing", "unreadable"]).tolist() == [True, True, False, False]


@pytest.mark.realdata
def test_real_dev_images_all_load(shopee_dev):
    paths = sorted((shopee_dev / "train_images").glob("*.jpg"))
    if not paths:
        pytest.skip(f"no dev images under {shopee_dev}")
    statuses = [load_array(p, 32)[1] for p in paths]
    assert count_statuses(statuses)["ok"] == len(paths)
