"""Bytes or a path -> the RGB uint8 array the models take. Every bad input raises
InvalidImage with a message a person understands.

Handles what phones and scanners produce: EXIF orientation; RGBA/LA/palette
transparency (flattened on white); grayscale, CMYK, 16-bit and float images; the first
frame of animations; HEIC/HEIF where pillow-heif is installed.
"""

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 40-megapixel photo; more is a decompression bomb or a scan
MIN_SIDE = 32
FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF", "GIF", "HEIF"}
HEIF_BRANDS = (b"ftypheic", b"ftypheix", b"ftyphevc", b"ftypmif1", b"ftypmsf1")

try:
    from pillow_heif import register_heif_opener
    register_heif_opener()
    HEIF_SUPPORTED = True
except ImportError:
    HEIF_SUPPORTED = False

# File name endings of the images this project reads; HEIC/HEIF need pillow-heif.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
HEIF_SUFFIXES = (".heic", ".heif")


class InvalidImage(ValueError):
    """An input that is not a usable image; the message says why and what to do."""


def read_image(source, *, min_side: int = MIN_SIDE) -> np.ndarray:
    """An image file (bytes, or a path) -> HxWx3 uint8 RGB, upright. Each side must have
    at least min_side pixels (a photo a person uploads: 32)."""
    data = _read_bytes(source)
    if not data:
        raise InvalidImage("the file is empty")
    if len(data) > MAX_BYTES:
        raise InvalidImage(f"the file is {len(data) / 2**20:.1f} MB; the limit is "
                           f"{MAX_BYTES // 2**20} MB")
    if data[4:12] in HEIF_BRANDS and not HEIF_SUPPORTED:
        raise InvalidImage("this is a HEIC/HEIF photo, which needs the pillow-heif package "
                           "(pip install pillow-heif); or export it as JPEG")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in FORMATS:
                raise InvalidImage(f"{image.format} images are not supported; use JPEG or PNG")
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise InvalidImage(f"the image is {width}x{height} pixels; at most "
                                   f"{MAX_PIXELS // 1_000_000} megapixels are accepted")
            image.load()
            image = ImageOps.exif_transpose(image)
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage(f"the image has too many pixels; at most "
                           f"{MAX_PIXELS // 1_000_000} megapixels are accepted") from None
    except UnidentifiedImageError:
        raise InvalidImage("this file is not an image that can be read (JPEG, PNG, WebP, "
                           "BMP, TIFF or GIF expected)") from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise InvalidImage("the image data is truncated or corrupt") from None
    if min(image.size) < min_side:
        raise InvalidImage(f"the image is {image.size[0]}x{image.size[1]} pixels; each side "
                           f"needs at least {min_side}")
    return to_rgb(image)


def _read_bytes(source) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    path = Path(source)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise InvalidImage(f"{path.name} is {path.stat().st_size / 2**20:.1f} MB; the "
                               f"limit is {MAX_BYTES // 2**20} MB")
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidImage(f"{path} does not exist") from None
    except IsADirectoryError:
        raise InvalidImage(f"{path} is a folder, not an image") from None
    except OSError as e:
        raise InvalidImage(f"cannot read {path}: {e.strerror}") from None


def to_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow mode -> HxWx3 uint8; transparency is flattened onto white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or pixels.max() > 255 else 255.0
        gray = np.clip(pixels / top * 255.0, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)
