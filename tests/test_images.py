"""skin.images.read_image on a corpus of bad and odd files that the tests make."""

import numpy as np
import pytest
from PIL import Image

from skin.images import MAX_BYTES, InvalidImage, read_image
from tests.corpus import BAD, ODD, encode, photo


@pytest.mark.parametrize("kind, name, data, reason", BAD, ids=[b[0] for b in BAD])
def test_bad_files_raise_invalid_image_with_a_reason(kind, name, data, reason):
    with pytest.raises(InvalidImage, match=reason):
        read_image(data)


@pytest.mark.parametrize("kind, name, data, expected", ODD, ids=[o[0] for o in ODD])
def test_odd_files_become_rgb_arrays(kind, name, data, expected):
    rgb = read_image(data)
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8


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
    palette = photo(64, 48).convert("P", palette=Image.ADAPTIVE, colors=4)
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
    path.write_bytes(encode(photo(64, 48), fmt))
    rgb = read_image(path)
    assert rgb.shape == (48, 64, 3) and rgb[0, 0, 0] > 150
