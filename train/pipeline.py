"""The tf.data input pipeline: decode in parallel, crop and resize once, cache, shuffle,
batch, augment whole batches (Keras preprocessing layers), then the backbone's
own preprocess_input, with prefetch so the model never waits on input.
"""

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from skin.images import read_image
from skin.preprocessing import center_crop_resize, model_input
from train.augment import RandomAffine, RandomDefocus, RandomJpeg

AUTOTUNE = tf.data.AUTOTUNE
MIN_STRATUM_IMAGES = 20  # a class's images from one source, to be drawn as a stratum


# Augmentation strengths, chosen by name (python -m train --augment). "strong" widens the
# zoom, shift, brightness and contrast ranges and adds colour jitter: dermatoscopes differ
# in colour, and class-balanced batches show each rare-class image a dozen times an epoch.
# "acquisition" keeps the standard ranges and adds what another clinic's camera does to an
# image: defocus (half the images, up to a Gaussian blur of 1 pixel at the training size)
# and JPEG re-compression (half the images, quality 30 to 90).
STANDARD = {"zoom": 0.15, "shift": 0.1, "brightness": 0.15, "contrast": 0.15,
            "saturation": 0.0, "hue": 0.0, "defocus": 0.0, "jpeg": 0.0}
AUGMENTATIONS = {
    "standard": STANDARD,
    "strong": {**STANDARD, "zoom": 0.3, "shift": 0.15, "brightness": 0.25, "contrast": 0.25,
               "saturation": 0.08, "hue": 0.05},
    "acquisition": {**STANDARD, "defocus": 0.5, "jpeg": 0.5},
}


def augmenter(seed: int, strength: str = "standard") -> keras.Sequential:
    """Random mirror, rotation, zoom and shift (one resample), brightness and contrast;
    with "strong", also saturation (multiplied by f / (1 - f), f drawn from 0.5 +- the
    entry: x0.72 to x1.38) and hue (shifted by up to half the entry of a full turn: 9
    degrees); with "acquisition", defocus and JPEG re-compression (entries: the share of
    images each is applied to).

    Dermoscopy has no "up": mirrors and full rotations keep the label.
    """
    a = AUGMENTATIONS[strength]
    steps = [
        RandomAffine(rotation=0.5, zoom=a["zoom"], shift=a["shift"], seed=seed),
    ]
    if a["defocus"]:
        steps.append(RandomDefocus(sigma=1.0, rate=a["defocus"], seed=seed + 5))
    steps += [
        keras.layers.RandomBrightness(a["brightness"], value_range=(0, 255), seed=seed + 1),
        keras.layers.RandomContrast(a["contrast"], value_range=(0, 255), seed=seed + 2),
    ]
    if a["saturation"]:
        steps.append(keras.layers.RandomSaturation(
            (0.5 - a["saturation"], 0.5 + a["saturation"]), value_range=(0, 255), seed=seed + 3))
    if a["hue"]:
        steps.append(keras.layers.RandomHue(a["hue"], value_range=(0, 255), seed=seed + 4))
    if a["jpeg"]:
        steps.append(RandomJpeg(low=30, high=90, rate=a["jpeg"], seed=seed + 6))
    return keras.Sequential(steps, name="augmentation")


def decode(path):
    """A file path -> HxWx3 uint8 RGB, decoded by the app's own decoder
    (skin.images.read_image: EXIF rotation applied, transparency on white, the first frame
    of an animation, the same formats and size limits but the 32-pixel minimum of an
    upload) inside the tf.data graph, so that a model trains on exactly the pixels it is
    served. Each image is decoded once: the pipeline caches them after the first epoch."""
    pixels = tf.numpy_function(_read_image, [tf.io.read_file(path)], tf.uint8, stateful=False)
    pixels.set_shape([None, None, 3])
    return pixels


def _read_image(data) -> np.ndarray:
    # Eagerly the bytes arrive as a 0-d object array, inside a graph as bytes.
    return read_image(np.asarray(data, dtype=object).item(), min_side=1)


def load_image(path, size: int):
    """A file path -> size x size x 3 uint8, centre-cropped and resized."""
    return center_crop_resize(decode(path), size)


def undecodable(paths) -> list[str]:
    """The files the pipeline's own decoder fails on, found in one parallel pass."""
    paths = list(paths)
    if not paths:
        return []
    decoded = (tf.data.Dataset.from_tensor_slices(paths)
               .map(lambda p: (p, tf.shape(decode(p))), num_parallel_calls=AUTOTUNE)
               .ignore_errors())
    ok = {path.numpy().decode() for path, _ in decoded}
    return [p for p in paths if p not in ok]


def decoded_images(paths, labels, size: int, cache: bool = True) -> tf.data.Dataset:
    """(path, label) pairs -> (size x size x 3 uint8 image, label), decoded in parallel and
    cached after the resize (7,000 images at 96 px take about 190 MB), so only the first
    epoch reads and decodes files. A label is a class index or a row of soft targets."""
    ds = tf.data.Dataset.from_tensor_slices((list(paths), list(labels)))
    ds = ds.map(lambda p, y: (load_image(p, size), y), num_parallel_calls=AUTOTUNE,
                deterministic=True)
    return ds.cache() if cache else ds


def batches(ds, num_classes: int, backbone: str, batch_size: int, training: bool,
            seed: int = 0, augmentation: str = "standard",
            colour_constancy: str = "none") -> tf.data.Dataset:
    """Decoded images -> batches of (model input, target), augmented in training. The
    target is the one-hot label, or the soft targets when the labels are rows of them.
    Colour constancy comes after augmentation, as serving applies it to what it sees."""
    ds = ds.batch(batch_size)
    if training:
        augment = augmenter(seed, augmentation)
        ds = ds.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=AUTOTUNE)
    soft = ds.element_spec[1].dtype.is_floating
    ds = ds.map(lambda x, y: (model_input(x, backbone, colour_constancy),
                              y if soft else tf.one_hot(y, num_classes)),
                num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def image_dataset(
    paths, labels, num_classes: int, backbone: str, size: int, batch_size: int,
    training: bool, seed: int = 0, cache: bool = True, augmentation: str = "standard",
    colour_constancy: str = "none",
) -> tf.data.Dataset:
    """(path, class index) pairs -> batches of (model input, one-hot label); in training,
    shuffled each epoch and augmented."""
    ds = decoded_images(paths, labels, size, cache)
    if training:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    return batches(ds, num_classes, backbone, batch_size, training, seed, augmentation,
                   colour_constancy)


def class_balanced_dataset(
    paths, labels, num_classes: int, backbone: str, size: int, batch_size: int, seed: int = 0,
    augmentation: str = "standard", targets=None, colour_constancy: str = "none",
    strata=None,
) -> tf.data.Dataset:
    """Endless augmented training batches that draw every class equally often: each
    class's images cached, reshuffled and repeated on their own, then sampled with equal
    weights (fit it with steps_per_epoch). In expectation the same objective as balanced
    class weights, with rare classes seen more often instead of weighted more heavily.
    targets: soft targets (one row per image) to train towards instead of the labels.
    strata: a key per image (see source_strata); a class's share is then split equally
    among its strata, so that within a class no stratum is drawn more than another."""
    paths, labels = np.asarray(list(paths)), np.asarray(list(labels))
    targets = labels if targets is None else np.asarray(targets)
    strata = np.zeros(len(labels), int) if strata is None else np.asarray(list(strata))
    classes = np.unique(labels)
    parts, weights = [], []
    for c in classes:
        class_strata = np.unique(strata[labels == c])
        for j, stratum in enumerate(class_strata):
            chosen = (labels == c) & (strata == stratum)
            # The first stratum keeps the class's own shuffle seed: plain sampling (one
            # stratum per class) draws exactly as it did before strata existed.
            parts.append(decoded_images(paths[chosen], targets[chosen], size)
                         .shuffle(int(chosen.sum()), seed=seed + int(c) + 1000 * j,
                                  reshuffle_each_iteration=True)
                         .repeat())
            weights.append(1 / (len(classes) * len(class_strata)))
    ds = tf.data.Dataset.sample_from_datasets(parts, weights=weights, seed=seed)
    return batches(ds, num_classes, backbone, batch_size, training=True, seed=seed,
                   augmentation=augmentation, colour_constancy=colour_constancy)


def source_strata(labels, sources, min_images: int = MIN_STRATUM_IMAGES) -> np.ndarray:
    """Each image's stratum for class_balanced_dataset: its source, except that a source
    with fewer than min_images of a class counts, for that class, as the class's largest
    source (too few images to be drawn as often as a whole source's)."""
    table = pd.DataFrame({"label": np.asarray(list(labels)), "source": np.asarray(list(sources))})
    counts = table.value_counts(["label", "source"])
    largest = counts.groupby(level="label").idxmax().map(lambda key: key[1])
    enough = counts.loc[list(zip(table["label"], table["source"]))].to_numpy() >= min_images
    return np.where(enough, table["source"], table["label"].map(largest)).astype(str)
