"""The tf.data pipeline and the preprocessing shared with serving."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from skin.backbones import BACKBONES
from skin.preprocessing import center_crop_resize, model_input, shades_of_gray
from skin.images import read_image
from tests.corpus import BAD, ODD
from train.pipeline import (class_balanced_dataset, decode, image_dataset, source_strata,
                            undecodable)


def test_center_crop_keeps_the_middle_and_the_aspect():
    wide = np.zeros((30, 60, 3), np.uint8)
    wide[:, :15] = wide[:, 45:] = (0, 0, 255)  # blue margins outside the centre square
    wide[:, 15:45] = (255, 0, 0)
    out = center_crop_resize(wide, 16).numpy()
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert (out[..., 2] == 0).all() and (out[..., 0] == 255).all()


@pytest.mark.parametrize("name", list(BACKBONES))
def test_model_input_is_the_backbones_own_preprocess_input(name):
    images = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3)).astype(np.uint8)
    expected = BACKBONES[name].preprocess_input(images.astype(np.float32).copy())
    np.testing.assert_allclose(model_input(images, name).numpy(), expected, rtol=1e-5, atol=1e-4)


def test_shades_of_gray_removes_a_colour_cast_and_leaves_grey_light_alone():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 200, (16, 16, 3)).astype(np.float32)
    grey = np.full((16, 16, 3), 120.0, np.float32)
    np.testing.assert_allclose(shades_of_gray(grey).numpy(), grey, atol=1e-3)
    # A cast multiplies each channel by its own gain; corrected, what is left is one gain
    # for the whole image.
    corrected = shades_of_gray(image).numpy()
    cast = shades_of_gray(image * np.array([1.2, 0.9, 0.7], np.float32)).numpy()
    ratio = cast[corrected > 1] / corrected[corrected > 1]
    assert np.ptp(ratio) < 1e-3
    assert np.isfinite(shades_of_gray(np.zeros((8, 8, 3), np.uint8)).numpy()).all()


def test_model_input_applies_colour_constancy_or_refuses_an_unknown_one():
    images = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3)).astype(np.uint8)
    expected = BACKBONES["mobilenetv2"].preprocess_input(shades_of_gray(images).numpy())
    np.testing.assert_allclose(model_input(images, "mobilenetv2", "shades_of_gray").numpy(),
                               expected, atol=1e-5)
    with pytest.raises(ValueError, match="unknown colour constancy 'retinex'"):
        model_input(images, "mobilenetv2", "retinex")


def write_images(folder, n):
    paths = []
    for i in range(n):
        path = folder / f"{i}.png"
        Image.fromarray(np.full((30, 40, 3), 20 * i, np.uint8)).save(path)
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("fmt, options", [
    ("JPEG", {"quality": 90}),  # 4:2:0 chroma subsampling, as in HAM10000
    ("JPEG", {"quality": 75, "subsampling": 0}),
    ("PNG", {}),
])
def test_training_and_serving_decode_to_identical_pixels(tmp_path, fmt, options):
    rng = np.random.default_rng(0)
    pixels = np.clip(rng.normal(128, 60, (150, 200, 3)), 0, 255).astype(np.uint8)
    path = tmp_path / f"photo.{fmt.lower()}"
    Image.fromarray(pixels).save(path, fmt, **options)
    np.testing.assert_array_equal(decode(str(path)).numpy(), read_image(path))


@pytest.mark.parametrize("kind, data", [(kind, data) for kind, _, data, _ in ODD],
                         ids=[kind for kind, *_ in ODD])
def test_training_decodes_the_odd_files_as_the_app_does(tmp_path, kind, data):
    path = tmp_path / "upload"
    path.write_bytes(data)
    np.testing.assert_array_equal(decode(str(path)).numpy(), read_image(path))


def test_training_refuses_the_files_the_app_refuses(tmp_path):
    paths = []
    for i, (_, _, data, _) in enumerate(BAD):
        paths.append(str(tmp_path / f"upload-{i}"))
        Path(paths[-1]).write_bytes(data)
    refused = [p for p, (_, _, _, expected) in zip(paths, BAD) if "at least 32" not in expected]
    assert undecodable(paths) == refused  # a tiny image trains (the app refuses it)


def test_batches_have_model_inputs_and_one_hot_labels(tmp_path):
    paths = write_images(tmp_path, 5)
    batches = list(image_dataset(paths, [0, 1, 2, 0, 1], 3, "mobilenetv2", 24, 2,
                                 training=False))
    assert [b[0].shape[0] for b in batches] == [2, 2, 1]
    x, y = batches[0]
    assert x.shape == (2, 24, 24, 3) and x.dtype == tf.float32
    assert -1.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1.0
    np.testing.assert_array_equal(y.numpy(), [[1, 0, 0], [0, 1, 0]])
    # Evaluation order is the input order, so predictions line up with labels.
    np.testing.assert_allclose(batches[1][0][0].numpy(), (40 / 127.5 - 1), atol=0.01)


def test_training_batches_are_augmented_and_shuffled(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(8):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)).save(path)
        paths.append(str(path))
    plain = image_dataset(paths, list(range(8)), 8, "mobilenetv2", 32, 8, training=False)
    augmented = image_dataset(paths, list(range(8)), 8, "mobilenetv2", 32, 8, training=True)
    x_plain, _ = next(iter(plain))
    x_aug, y_aug = next(iter(augmented))
    assert sorted(y_aug.numpy().argmax(1)) == list(range(8))
    assert list(y_aug.numpy().argmax(1)) != list(range(8))  # shuffled (seeded)
    order = y_aug.numpy().argmax(1)
    assert not np.allclose(x_aug.numpy(), x_plain.numpy()[order], atol=0.05)


def test_class_balanced_batches_draw_every_class_about_equally(tmp_path):
    paths = write_images(tmp_path, 12)
    labels = [0] * 9 + [1] * 2 + [2]  # 75%, 17% and 8% of the images
    batches = class_balanced_dataset(paths, labels, 3, "mobilenetv2", 24, 30, seed=0)
    # Endless: take 1,200 draws. Which draws come depends on TensorFlow's global seed too,
    # which earlier tests may have set; 300 fell 0.09 from a third under one such seed.
    counts = sum(y.numpy().sum(axis=0) for _, y in batches.take(40))
    assert counts.sum() == 1200
    np.testing.assert_allclose(counts / 1200, [1 / 3] * 3, atol=0.06)


def test_source_balanced_batches_draw_each_source_of_a_class_equally(tmp_path):
    paths = write_images(tmp_path, 12)
    labels = np.array([0] * 8 + [1] * 4)
    sources = np.array(["a"] * 6 + ["b"] * 2 + ["a"] * 4)  # class 0: 75% from a
    cell = {("0", "a"): 0, ("0", "b"): 1, ("1", "a"): 2}
    # Train towards each image's cell, one-hot, to count the cells drawn.
    targets = np.eye(3, dtype=np.float32)[[cell[str(y), s] for y, s in zip(labels, sources)]]
    batches = class_balanced_dataset(paths, labels, 2, "mobilenetv2", 24, 30, seed=0,
                                     targets=targets, strata=sources)
    counts = sum(y.numpy().sum(axis=0) for _, y in batches.take(40))  # as above
    np.testing.assert_allclose(counts / 1200, [1 / 4, 1 / 4, 1 / 2], atol=0.06)


def test_a_source_with_too_few_images_of_a_class_is_drawn_with_its_largest_source():
    labels = [0] * 30 + [0] * 25 + [0] * 3 + [1] * 40 + [1] * 5
    sources = ["a"] * 30 + ["b"] * 25 + ["c"] * 3 + ["b"] * 40 + ["a"] * 5
    strata = source_strata(labels, sources, min_images=20)
    assert list(strata) == ["a"] * 30 + ["b"] * 25 + ["a"] * 3 + ["b"] * 45


def mean_colours(images):
    return np.asarray(images, np.float64).reshape(len(images), -1, 3).mean(axis=1)


def hues(colours):
    """Hue in degrees of each RGB colour (0 to 255)."""
    return tf.image.rgb_to_hsv(colours / 255.0).numpy()[:, 0] * 360


@pytest.mark.parametrize("strength, colour_changes", [("standard", False), ("strong", True)])
def test_only_strong_augmentation_shifts_hue_and_saturation(strength, colour_changes):
    from train.pipeline import augmenter
    # One flat skin-like colour: mirrors, turns, zooms and contrast leave it as it is, and
    # brightness moves all three channels alike (never to 0 or 255 here), keeping its hue
    # and the spread of its channels.
    colour = np.array([150.0, 100.0, 80.0])
    images = np.broadcast_to(colour, (32, 16, 16, 3)).astype(np.float32)
    out = np.asarray(augmenter(seed=5, strength=strength)(images, training=True))
    hue, original_hue = hues(mean_colours(out)), hues(colour[None])[0]
    spread = np.ptp(mean_colours(out), axis=1)  # brightest minus darkest channel
    if colour_changes:
        assert np.abs(hue - original_hue).max() > 3  # degrees
        assert spread.std() > 2  # saturation scaled by a different factor per image
    else:
        np.testing.assert_allclose(hue, original_hue, atol=0.5)
        np.testing.assert_allclose(spread, np.ptp(colour), atol=0.5)


def asymmetric_batch(n=6, size=24):
    image = np.zeros((size, size, 3), np.float32)
    image[4:10, 2:20] = 255.0  # an off-centre bar: every mirror or turn shows
    image[12:22, 3:6] = 128.0
    return np.stack([image] * n)


def test_random_affine_with_zero_ranges_is_the_identity():
    from train.augment import RandomAffine
    images = asymmetric_batch()
    still = RandomAffine(rotation=0, zoom=0, shift=0, mirror=False, seed=1)
    np.testing.assert_allclose(np.asarray(still(images, training=True)), images, atol=1e-3)


def test_random_affine_mirror_only_gives_the_image_or_its_mirror():
    from train.augment import RandomAffine
    images = asymmetric_batch(n=16)
    mirror = RandomAffine(rotation=0, zoom=0, shift=0, mirror=True, seed=1)
    out = np.asarray(mirror(images, training=True))
    mirrored = [np.allclose(o, images[0][:, ::-1], atol=1e-3) for o in out]
    same = [np.allclose(o, images[0], atol=1e-3) for o in out]
    assert all(m or s for m, s in zip(mirrored, same))
    assert any(mirrored) and any(same)


def test_random_affine_transforms_in_training_only():
    from train.augment import RandomAffine
    images = asymmetric_batch()
    layer = RandomAffine(seed=3)
    np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)
    out = np.asarray(layer(images, training=True))
    assert not np.allclose(out[0], images[0], atol=1.0)
    assert not np.allclose(out[0], out[1], atol=1.0)  # a different transform per image


def test_a_file_broken_after_validation_is_named(tmp_path):
    """What the trainer does when decoding fails mid-run: find the culprit by name."""
    from skin.dataset import unusable_images
    from train.pipeline import undecodable
    paths = write_images(tmp_path, 4)
    assert undecodable(paths) == []
    with open(paths[2], "r+b") as f:  # damaged on disk after the dataset was checked
        f.truncate(40)
    with pytest.raises(tf.errors.OpError):
        list(image_dataset(paths, [0, 1, 0, 1], 2, "mobilenetv2", 24, 2, training=False))
    assert unusable_images(paths) == {"unreadable": [paths[2]]}


def high_frequency_energy(images):
    """Mean squared difference between horizontal neighbours, per image."""
    return (np.diff(np.asarray(images, np.float64), axis=2) ** 2).mean(axis=(1, 2, 3))


def test_random_defocus_blurs_the_chosen_share_of_images_in_training_only():
    from train.augment import RandomDefocus
    images = np.random.default_rng(0).uniform(0, 255, (64, 24, 24, 3)).astype(np.float32)
    layer = RandomDefocus(sigma=1.0, rate=0.5, seed=1)
    np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)
    out = np.asarray(layer(images, training=True))
    untouched = np.all(out == images, axis=(1, 2, 3))
    assert 10 < untouched.sum() < 54  # about half, drawn per image
    ratio = high_frequency_energy(out[~untouched]) / high_frequency_energy(images[~untouched])
    assert np.all(ratio < 1) and ratio.min() < 0.3  # up to a full blur of the noise
    assert out.min() >= 0 and out.max() <= 255


def test_random_jpeg_recompresses_the_chosen_share_of_images_in_training_only():
    from train.augment import RandomJpeg
    images = np.random.default_rng(1).uniform(0, 255, (64, 24, 24, 3)).astype(np.float32)
    layer = RandomJpeg(low=30, high=90, rate=0.5, seed=2)
    np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)
    out = np.asarray(layer(images, training=True))
    untouched = np.all(out == images, axis=(1, 2, 3))
    assert 10 < untouched.sum() < 54
    # JPEG at quality <= 90 loses much of pure noise, and keeps the image's scale.
    assert np.abs(out[~untouched] - images[~untouched]).mean(axis=(1, 2, 3)).min() > 5
    assert out.min() >= 0 and out.max() <= 255
    np.testing.assert_allclose(out[~untouched].mean(), images[~untouched].mean(), atol=5)


@pytest.mark.parametrize("strength, degraded", [("standard", False), ("acquisition", True)])
def test_only_acquisition_augmentation_blurs_and_recompresses(strength, degraded):
    """A flat image with one sharp edge: geometry and brightness keep the edge sharp (one
    step across one pixel); defocus and JPEG soften or ring it in some images."""
    from train.pipeline import augmenter
    image = np.full((32, 32, 3), 60.0, np.float32)
    image[:, 16:] = 200.0
    images = np.stack([image] * 32)
    layer = augmenter(seed=7, strength=strength)
    layer.layers[0].rotation = layer.layers[0].zoom = layer.layers[0].shift = 0  # no resample
    layer.layers[0].mirror = False
    out = np.asarray(layer(images, training=True))
    # Per row, the values strictly between the two flat levels of the (brightness- and
    # contrast-moved) image: 0 for a sharp edge.
    low, high = out.min(axis=(1, 2, 3)), out.max(axis=(1, 2, 3))
    between = ((out > low[:, None, None, None] + 3) & (out < high[:, None, None, None] - 3))
    soft_images = between.any(axis=(1, 2, 3)).sum()
    assert (soft_images > 4) if degraded else (soft_images == 0)
