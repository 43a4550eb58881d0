"""A corpus of bad and odd image files, made here: what users and phones upload.

Each entry: (kind, file name, bytes, expected), where expected is None for a file that
must be classified and otherwise a fragment of the message that must refuse it.
"""

import io

import numpy as np
from PIL import Image

from skin.images import HEIF_SUPPORTED, MAX_BYTES


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def photo(width=200, height=150) -> Image.Image:
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[: height // 2] = (200, 30, 30)  # red top half: orientation shows
    pixels[height // 2:] = (30, 30, 200)
    return Image.fromarray(pixels)


def exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(photo(), "JPEG", exif=exif.tobytes())


def transparent_palette() -> bytes:
    image = photo().convert("P", palette=Image.ADAPTIVE, colors=8)
    return encode(image, "PNG", transparency=0)


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (64, 64), c) for c in ((250, 0, 0), (0, 250, 0))]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:])


BAD = [
    ("empty file", "empty.jpg", b"", "empty"),
    ("text renamed .jpg", "notes.jpg", b"just some text, not a picture\n" * 20, "not an image"),
    ("SVG drawing", "drawing.svg.png",
     b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect/></svg>', "not an image"),
    ("HTML page", "page.jpg", b"<!DOCTYPE html><html><body>Quota exceeded</body></html>", "not an image"),
    ("PDF document", "scan.png", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "not an image"),
    ("truncated JPEG", "cut.jpg", encode(photo(), "JPEG")[:300], "truncated or corrupt"),
    ("truncated PNG", "cut.png", encode(photo(), "PNG")[:120], "truncated or corrupt"),
    ("1x1 image", "dot.png", encode(Image.new("RGB", (1, 1)), "PNG"), "at least 32"),
    ("100000x1 image", "strip.png", encode(Image.new("1", (100000, 1)), "PNG"), "at least 32"),
    ("decompression bomb", "bomb.png", encode(Image.new("1", (10000, 10000)), "PNG"), "megapixels"),
    ("icon format", "favicon.png", encode(photo(64, 64), "ICO"), "not supported"),
    ("HEIC without pillow-heif", "phone.jpg",
     b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\0" * 100,
     "not an image" if HEIF_SUPPORTED else "pillow-heif"),
    ("AVIF saved as .jpg", "web-download.jpg", encode(photo(), "AVIF"), "AVIF images are not supported"),
    ("file over the size limit", "huge.jpg", b"\xff\xd8\xff\xe0" + b"\0" * (MAX_BYTES + 2**20), "limit"),
]

ODD = [
    ("EXIF-rotated JPEG", "rotated.jpg", exif_rotated(), None),
    ("RGBA PNG", "alpha.png", encode(photo().convert("RGBA"), "PNG"), None),
    ("grey + alpha PNG", "la.png", encode(photo().convert("LA"), "PNG"), None),
    ("palette PNG with transparency", "palette.png", transparent_palette(), None),
    ("grayscale PNG", "grey.png", encode(photo().convert("L"), "PNG"), None),
    ("CMYK JPEG", "print.jpg", encode(photo().convert("CMYK"), "JPEG"), None),
    ("16-bit PNG", "deep.png", encode(Image.fromarray(np.full((150, 200), 30000, np.uint16)), "PNG"), None),
    ("animated GIF", "moving.gif", animated_gif(), None),
    ("WebP", "photo.webp", encode(photo(), "WEBP"), None),
    ("BMP", "photo.bmp", encode(photo(), "BMP"), None),
    ("TIFF", "photo.tiff", encode(photo(), "TIFF"), None),
    ("odd characters in the name", "läsion #1 (copy) <img src=x onerror=alert(1)> 😀.jpg", encode(photo(), "JPEG"), None),
]

CORPUS = BAD + ODD
