"""Image geometry and pixel preprocessing shared by training and serving.

Both sides call these functions, so a model sees at serving time exactly what it saw in
training: a centre square crop (keeps the lesion's aspect; dermoscopy centres the
lesion), an antialiased resize, uint8 pixels, then the backbone's own preprocess_input.
"""

import tensorflow as tf

from skin.backbones import get_backbone

RESIZE_METHOD = "center_crop"


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


def model_input(images, backbone_name: str):
    """uint8 images (batch or single) -> the float32 tensor the backbone expects."""
    preprocess = get_backbone(backbone_name).preprocess_input
    return preprocess(tf.cast(images, tf.float32))
