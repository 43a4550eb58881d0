"""Image geometry and pixel preprocessing shared by training and serving.

Both sides call these functions, so a model sees at serving time exactly what it saw in
training: a centre square crop (keeps the lesion's aspect; dermoscopy centres the
lesion), an antialiased resize, uint8 pixels, then (where the card asks for it) colour
constancy and the backbone's own preprocess_input.
"""

import math

import tensorflow as tf

from skin.backbones import get_backbone
from skin.cards import COLOUR_CONSTANCY

RESIZE_METHOD = "center_crop"
SHADES_OF_GRAY_P = 6


def center_crop_resize(image, size: int):
    """An HxWx3 image (any dtype) -> size x size x 3 uint8, centre square crop first."""
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    side = tf.minimum(height, width)
    image = tf.image.crop_to_bounding_box(
        image, (height - side) // 2, (width - side) // 2, side, side
    )
    image = tf.image.resize(image, (size, size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def shades_of_gray(images, p: int = SHADES_OF_GRAY_P):
    """Images (batch or single, 0-255) with their light source's colour divided out.

    Each image's illuminant is the p-norm mean of each channel (Finlayson and Trezzi 2004;
    p = 6 as in the top ISIC 2018 entries); dividing by it, scaled to the length of a grey
    one (which changes nothing), removes a dermatoscope's colour cast.
    """
    x = tf.cast(images, tf.float32)
    illuminant = tf.reduce_mean(tf.pow(x / 255.0, p), axis=(-3, -2), keepdims=True) ** (1 / p)
    illuminant = tf.maximum(illuminant, 1e-6)
    illuminant = illuminant / tf.norm(illuminant, axis=-1, keepdims=True) * math.sqrt(3)
    return tf.clip_by_value(x / illuminant, 0, 255)


def model_input(images, backbone_name: str, colour_constancy: str = "none"):
    """uint8 images (batch or single) -> the float32 tensor the backbone expects, after
    colour constancy where the model was trained with it (the card's preprocessing)."""
    x = tf.cast(images, tf.float32)
    if colour_constancy == "shades_of_gray":
        x = shades_of_gray(x)
    elif colour_constancy != "none":
        raise ValueError(f"unknown colour constancy {colour_constancy!r}; "
                         f"expected one of {', '.join(COLOUR_CONSTANCY)}")
    return get_backbone(backbone_name).preprocess_input(x)
