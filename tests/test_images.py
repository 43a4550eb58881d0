"""skin.images.read_image on a corpus of bad and odd files that the tests make."""

import io

import numpy as np
import pytest
from PIL import Image

from skin.images import HEIF_SUPPORTED, MAX_BYTES, InvalidImage, read_image


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def photo(width=64, height=48) -> Image.Image:
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[: height // 2] = (200, 30, 30)  # red top half: orientation shows
    pixels[height // 2:] = (30, 30, 200)
    return Image.fromarray(pixels)


# Files that must be refused, each with the reason a person understands ----------------

BAD = {
    "empty": (b"", "empty"),
    "text renamed .jpg": (b"just some text, not a picture\n" * 20, "not an image"),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect/></svg>',
            "not an image"),
    "html page": (b"<!DOCTYPE html><html><body>Quota exceeded</body></html>", "not an image"),
    "truncated jpeg": (encode(photo(), "JPEG")[:300], "truncated or corrupt"),
    "truncated png": (encode(photo(), "PNG")[:120], "truncated or corrupt"),
    "1x1 pixel": (encode(Image.new("RGB", (1, 1)), "PNG"), "at least 32"),
    "100000x1 strip": (encode(Image.new("1", (100000, 1)), "PNG"), "at least 32"),
    "decompression bomb": (encode(Image.new("1", (10000, 10000)), "PNG"), "megapixels"),
    "icon format": (encode(photo(), "ICO"), "not supported"),
    "pdf": (b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "not an image"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_files_raise_invalid_image_with_a_reason(kind):
    data, reason = BAD[kind]
    with pytest.raises(InvalidImage, match=reason):
        read_image(data)


def test_a_file_over_the_size_limit(tmp_path):
    big = tmp_path / "huge.jpg"
    big.write_bytes(b"\xff\xd8" + b"\0" * (MAX_BYTES + 1))
    with pytest.raises(InvalidImage, match="MB; the limit"):
        read_image(big)


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(InvalidImage, match="does not exist"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(InvalidImage, match="is a folder"):
        read_image(tmp_path)


@pytest.mark.skipif(HEIF_SUPPORTED, reason="pillow-heif is installed here")
def test_heic_without_pillow_heif_says_what_to_install():
    header = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\0" * 100
    with pytest.raises(InvalidImage, match="pillow-heif"):
        read_image(header)


# Odd files that must work --------------------------------------------------------------

def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    rgb = read_image(encode(photo(64, 48), "JPEG", exif=exif.tobytes()))
    assert rgb.shape == (64, 48, 3)
    assert rgb[32, 2, 2] > 150 and rgb[32, -3, 0] > 150  # blue now left, red right


@pytest.mark.parametrize("mode", ["RGBA", "LA", "PA"])
def test_transparency_is_flattened_on_white(mode):
    image = Image.new("RGBA", (40, 40), (255, 0, 0, 0))  # fully transparent red
    image = image.convert(mode) if mode != "PA" else image.convert("P", palette=Image.ADAPTIVE)
    if mode == "PA":
        image.info["transparency"] = 0
    rgb = read_image(encode(image, "PNG", **({"transparency": 0} if mode == "PA" else {})))
    assert rgb.shape == (40, 40, 3) and rgb.min() >= 250


def test_grayscale_cmyk_and_palette_become_rgb():
    assert read_image(encode(Image.new("L", (40, 40), 90), "PNG"))[0, 0].tolist() == [90] * 3
    cmyk = read_image(encode(Image.new("CMYK", (40, 40), (0, 255, 255, 0)), "JPEG"))
    assert cmyk[0, 0, 0] > 200 and cmyk[0, 0, 1] < 60  # CMYK red is RGB red
    palette = photo().convert("P", palette=Image.ADAPTIVE, colors=4)
    assert read_image(encode(palette, "GIF")).shape == (48, 64, 3)


def test_16_bit_grayscale_is_scaled_to_8_bit():
    pixels = np.full((40, 40), 65535 // 2, np.uint16)
    rgb = read_image(encode(Image.fromarray(pixels), "PNG"))
    assert rgb.dtype == np.uint8 and abs(int(rgb[0, 0, 0]) - 127) <= 1


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (40, 40), c) for c in ((250, 0, 0), (0, 250, 0))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert read_image(data)[0, 0].tolist()[0] > 200


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF"])
def test_common_formats_from_a_path_with_odd_characters(tmp_path, fmt):
    path = tmp_path / f"läsion #1 (copy) 😀.{fmt.lower()}"
    path.write_bytes(encode(photo(), fmt))
    rgb = read_image(path)
    assert rgb.shape == (48, 64, 3) and rgb[0, 0, 0] > 150
