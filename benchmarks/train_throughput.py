"""Training throughput (images/s) of the input pipeline against its compute bound and
against the per-image Python loader of the reference projects (ImageDataGenerator).

Same model (from scratch, whole network trainable), same batch, same images; each
figure is the mean of the epochs after the first (which pays for tracing and, in the
tf.data pipeline, for decoding into the cache). Prints a Markdown table.

    python benchmarks/train_throughput.py [--backbone mobilenetv2] [--img-size 96]
        [--jit-compile] [--dtype-policy mixed_bfloat16]
"""

import argparse
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from PIL import Image, ImageEnhance
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from skin.backbones import build_classifier, get_backbone  # noqa: E402
from skin.dataset import HAM10000_BESIDE_CHECKOUT  # noqa: E402
from train.pipeline import image_dataset  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


class ImageDataGeneratorLoader(keras.utils.PyDataset):
    """Keras 2's ImageDataGenerator(rotation_range, width/height_shift_range, zoom_range,
    horizontal_flip, brightness_range, preprocessing_function).flow_from_dataframe, as
    the reference projects configured it, reimplemented (Keras 3 dropped the class) with
    its own per-image steps: PIL load and nearest resize, one scipy affine_transform per
    channel, flip, PIL brightness, preprocess_input. fit() runs it in one Python worker.
    """

    def __init__(self, paths, labels, num_classes, backbone, size, batch_size, seed=0):
        super().__init__()
        self.paths, self.labels, self.size, self.batch_size = paths, labels, size, batch_size
        self.num_classes, self.preprocess = num_classes, get_backbone(backbone).preprocess_input
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return len(self.paths) // self.batch_size

    def random_affine(self, x):
        theta = np.deg2rad(self.rng.uniform(-180, 180))
        tx, ty = self.rng.uniform(-0.1, 0.1, 2) * self.size
        zx, zy = self.rng.uniform(0.85, 1.15, 2)
        rotation = np.array([[np.cos(theta), -np.sin(theta), 0],
                             [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
        shift = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
        zoom = np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
        centre = self.size / 2 - 0.5
        to_centre = np.array([[1, 0, centre], [0, 1, centre], [0, 0, 1]])
        from_centre = np.array([[1, 0, -centre], [0, 1, -centre], [0, 0, 1]])
        matrix = to_centre @ rotation @ shift @ zoom @ from_centre
        return np.stack([
            ndimage.affine_transform(x[..., c], matrix[:2, :2], matrix[:2, 2], order=1,
                                     mode="nearest")
            for c in range(3)
        ], axis=-1)

    def load(self, path):
        image = Image.open(path).convert("RGB").resize((self.size, self.size), Image.NEAREST)
        x = self.random_affine(np.asarray(image, np.float32))
        if self.rng.random() < 0.5:
            x = x[:, ::-1]
        image = Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))
        image = ImageEnhance.Brightness(image).enhance(self.rng.uniform(0.85, 1.15))
        return self.preprocess(np.asarray(image, np.float32))

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        x = np.stack([self.load(p) for p in self.paths[rows]])
        return x, keras.utils.to_categorical(self.labels[rows], self.num_classes)


def measure(backbone, size, data, steps, epochs, classes, jit_compile):
    keras.utils.set_random_seed(0)
    model = build_classifier(backbone, classes, size)
    model.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy",
                  jit_compile=jit_compile)
    timer = EpochTimer()
    model.fit(data, steps_per_epoch=steps, epochs=epochs, callbacks=[timer], verbose=0)
    first, rest = timer.seconds[0], timer.seconds[1:]
    return first, np.mean(rest)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mobilenetv2")
    parser.add_argument("--img-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=40, help="steps per epoch")
    parser.add_argument("--epochs", type=int, default=4)
    # Settings python -m train does not use; measured as ways to train faster on a CPU.
    parser.add_argument("--jit-compile", action="store_true",
                        help="XLA (Keras leaves it off on a CPU-only machine)")
    parser.add_argument("--dtype-policy", default="float32",
                        help="a Keras dtype policy, e.g. mixed_bfloat16")
    args = parser.parse_args()
    keras.config.set_dtype_policy(args.dtype_policy)

    meta = pd.read_csv(HAM10000_BESIDE_CHECKOUT / "metadata.csv")
    classes = sorted(meta["dx"].unique())
    n = args.steps * args.batch_size
    chosen = meta.sample(n, random_state=0)
    paths = np.array([str(HAM10000_BESIDE_CHECKOUT / "images" / f"{i}.jpg") for i in chosen["image_id"]])
    labels = chosen["dx"].map({c: i for i, c in enumerate(classes)}).to_numpy()

    pipeline = image_dataset(paths, labels, len(classes), args.backbone, args.img_size,
                             args.batch_size, training=True).repeat()
    x, y = next(iter(pipeline))
    in_memory = tf.data.Dataset.from_tensors((x, y)).repeat()
    loader = ImageDataGeneratorLoader(paths, labels, len(classes), args.backbone, args.img_size,
                            args.batch_size)

    rows = []
    for name, data in (("in-memory tensors (compute bound)", in_memory),
                       ("tf.data pipeline (train/pipeline.py)", pipeline),
                       ("ImageDataGenerator-style per-image loader", loader)):
        first, steady = measure(args.backbone, args.img_size, data, args.steps,
                                args.epochs, len(classes), args.jit_compile)
        rows.append((name, n / steady, n / first))
        print(f"{name}: {n / steady:.1f} images/s (first epoch {n / first:.1f})",
              file=sys.stderr, flush=True)

    bound, pipe, per_image = (r[1] for r in rows)
    print(f"\n{args.backbone}, {args.img_size} px, batch {args.batch_size}, {args.steps} steps "
          f"x {args.epochs} epochs, {args.dtype_policy}, XLA {'on' if args.jit_compile else 'off'}, TF {tf.__version__}, {tf.config.threading.get_inter_op_parallelism_threads() or 'default'} inter-op threads\n")
    print("| input | images/s (epochs 2+) | first epoch |")
    print("|---|---|---|")
    for name, steady, first in rows:
        print(f"| {name} | {steady:.1f} | {first:.1f} |")
    print(f"\npipeline / compute bound: {pipe / bound:.0%}; pipeline / per-image loader: "
          f"{pipe / per_image:.2f}x")


if __name__ == "__main__":
    main()
