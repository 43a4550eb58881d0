"""Images that are not dermoscopic images of one lesion, for measuring the input guard.

- `natural`: scikit-image's bundled sample images (BSD licence; `skimage.data`): photos
  (an astronaut, a cat, coffee, a rocket, coins, a moon), textures, microscopy, a retina,
  text and drawings; the greyscale ones as grey RGB.
- `faces`: the first 20 faces of `skimage.data.lfw_subset()` (25 x 25 px, greyscale).
These two sets are the ones the guard's design was compared on (docs/decisions.md).
- `held_out_faces`: the other 180 faces of `lfw_subset`, and `screenshots`: 24 app-like
  screens drawn here (bars, buttons, text): never used to choose anything.
"""

import numpy as np
from PIL import Image, ImageDraw

NATURAL = ("astronaut", "binary_blobs", "brick", "camera", "cat", "cell", "checkerboard",
           "chelsea", "clock", "coffee", "coins", "colorwheel", "grass", "gravel", "horse",
           "hubble_deep_field", "immunohistochemistry", "logo", "microaneurysms", "moon",
           "page", "retina", "rocket", "shepp_logan_phantom", "text")
SELECTION_FACES = 20


def as_rgb(array) -> np.ndarray:
    """Any skimage sample (bool, float, grey, RGBA) as an RGB uint8 array."""
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        low, high = float(array.min()), float(array.max())
        array = (255 * (array - low) / max(high - low, 1e-9)).astype(np.uint8)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return np.ascontiguousarray(array[..., :3])


def screenshot(seed: int, size=(640, 400)) -> np.ndarray:
    """An app-like screen: a coloured header, text lines, buttons and a panel."""
    rng = np.random.default_rng(seed)
    background = tuple(int(v) for v in rng.integers(225, 256, 3))
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    accent = tuple(int(v) for v in rng.integers(0, 200, 3))
    draw.rectangle([0, 0, size[0], 40], fill=accent)
    draw.text((12, 12), f"Settings - window {seed}", fill=(255, 255, 255))
    for line in range(int(rng.integers(6, 14))):
        y = 60 + 22 * line
        draw.text((20, y), " ".join("lorem ipsum dolor sit amet".split()[:int(rng.integers(2, 6))])
                  * int(rng.integers(1, 4)), fill=(30, 30, 30))
    for button in range(int(rng.integers(1, 4))):
        x = 20 + 130 * button
        draw.rounded_rectangle([x, size[1] - 60, x + 110, size[1] - 25], 8, fill=accent)
        draw.text((x + 25, size[1] - 50), "OK" if button == 0 else "Cancel", fill=(255, 255, 255))
    draw.rectangle([size[0] - 220, 60, size[0] - 20, 260], outline=accent, width=3)
    return np.asarray(image)


def non_lesion_images() -> dict[str, list[np.ndarray]]:
    """Set name -> RGB uint8 images (needs scikit-image, a dev requirement)."""
    import skimage.data

    faces = [as_rgb(face) for face in skimage.data.lfw_subset()]
    return {
        "natural": [as_rgb(getattr(skimage.data, name)()) for name in NATURAL],
        "faces": faces[:SELECTION_FACES],
        "held_out_faces": faces[SELECTION_FACES:],
        "screenshots": [screenshot(seed) for seed in range(24)],
    }
