"""One random geometric transform per image: mirror, rotation, zoom and shift together.

Keras's RandomFlip, RandomRotation, RandomZoom and RandomTranslation each resample the
whole batch; chained, they cost about four times one resample, and on a 2-core machine
that CPU time comes straight out of training (benchmarks/train_throughput.py). This layer
composes the four into one matrix per image and resamples once with Keras's own
`ops.image.affine_transform`, with the same ranges as those layers.
"""

import math

import keras
from keras import ops


class RandomAffine(keras.layers.Layer):
    """Random mirror, rotation (fraction of a full turn), zoom and shift (fractions of
    the image size), sampled independently per image. Identity at inference."""

    def __init__(self, rotation=0.5, zoom=0.15, shift=0.1, mirror=True,
                 fill_mode="reflect", seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rotation, self.zoom, self.shift, self.mirror = rotation, zoom, shift, mirror
        self.fill_mode, self.seed = fill_mode, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training:
            return images
        images = ops.cast(images, "float32")
        shape = ops.shape(images)
        batch, height, width = shape[0], ops.cast(shape[1], "float32"), ops.cast(shape[2], "float32")

        def uniform(low, high):
            return keras.random.uniform((batch,), low, high, seed=self.seed_generator)

        angle = uniform(-self.rotation * 2 * math.pi, self.rotation * 2 * math.pi)
        scale = uniform(1 - self.zoom, 1 + self.zoom)  # >1 shows more of the image
        dx = uniform(-self.shift, self.shift) * width
        dy = uniform(-self.shift, self.shift) * height
        flip = ops.where(uniform(0, 1) < 0.5, -1.0, 1.0) if self.mirror else ops.ones((batch,))
        # The matrix maps each output pixel (x, y) to the input pixel it samples:
        # input = centre + scale * R(angle) * diag(flip, 1) * (output - centre) + shift.
        cos, sin = ops.cos(angle) * scale, ops.sin(angle) * scale
        cx, cy = (width - 1) / 2, (height - 1) / 2
        a0, a1 = cos * flip, -sin
        b0, b1 = sin * flip, cos
        a2 = cx - a0 * cx - a1 * cy + dx
        b2 = cy - b0 * cx - b1 * cy + dy
        zeros = ops.zeros_like(angle)
        transform = ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
        return ops.image.affine_transform(images, transform, interpolation="bilinear",
                                          fill_mode=self.fill_mode)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rotation": self.rotation, "zoom": self.zoom,
                "shift": self.shift, "mirror": self.mirror, "fill_mode": self.fill_mode,
                "seed": self.seed}


class RandomDefocus(keras.layers.Layer):
    """Out-of-focus optics: with probability `rate`, each image is mixed with its Gaussian
    blur (standard deviation `sigma` pixels) by a random weight, from sharp to the full
    blur. One fixed blur and a per-image mix cost one convolution a batch, where a
    per-image kernel would cost one each. Identity at inference."""

    def __init__(self, sigma=1.0, rate=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.sigma, self.rate, self.seed = sigma, rate, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training:
            return images
        images = ops.cast(images, "float32")
        radius = max(1, math.ceil(2 * self.sigma))
        taps = ops.exp(-0.5 * (ops.arange(-radius, radius + 1, dtype="float32") / self.sigma) ** 2)
        taps = taps / ops.sum(taps)
        channels = images.shape[-1]
        along_x = ops.tile(ops.reshape(taps, (1, -1, 1, 1)), (1, 1, channels, 1))
        along_y = ops.tile(ops.reshape(taps, (-1, 1, 1, 1)), (1, 1, channels, 1))
        padded = ops.pad(images, [(0, 0), (radius, radius), (radius, radius), (0, 0)],
                         mode="reflect")
        blurred = ops.depthwise_conv(ops.depthwise_conv(padded, along_x), along_y)
        batch = ops.shape(images)[0]
        chosen = keras.random.uniform((batch,), seed=self.seed_generator) < self.rate
        weight = keras.random.uniform((batch,), seed=self.seed_generator)
        weight = ops.reshape(ops.where(chosen, weight, 0.0), (-1, 1, 1, 1))
        return images + weight * (blurred - images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "sigma": self.sigma, "rate": self.rate, "seed": self.seed}


class RandomJpeg(keras.layers.Layer):
    """A camera's or a web page's compression: with probability `rate`, each image
    (0-255) is JPEG-encoded at a random quality in [low, high] and decoded again.
    TensorFlow's JPEG codec, so it runs in the tf.data training pipeline only.
    Identity at inference."""

    def __init__(self, low=30, high=90, rate=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.low, self.high, self.rate, self.seed = low, high, rate, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        import tensorflow as tf

        if not training:
            return images
        images = tf.cast(images, tf.float32)
        batch = tf.shape(images)[0]
        chosen = keras.random.uniform((batch,), seed=self.seed_generator) < self.rate
        quality = tf.cast(keras.random.uniform((batch,), self.low, self.high + 1,
                                               seed=self.seed_generator), tf.int32)

        def recompress(args):
            image, q = args
            return tf.image.adjust_jpeg_quality(tf.clip_by_value(image, 0, 255) / 255, q) * 255

        compressed = tf.map_fn(recompress, (images, quality), fn_output_signature=tf.float32)
        return tf.where(chosen[:, None, None, None], compressed, images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "low": self.low, "high": self.high,
                "rate": self.rate, "seed": self.seed}
