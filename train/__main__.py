"""python -m train: train one backbone on a labelled image set and write its model card.

    python -m train --data ../shared/data/ham10000 --backbone mobilenetv2 --img-size 96 \
        --epochs 30 --init none --out runs/mobilenetv2-96 --split runs/split.csv

Kill it and run the same command again: it continues after the last finished epoch.
"""

import argparse
import contextlib
import shutil
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from skin.backbones import (
    BACKBONES, BackboneError, build_classifier, check_input_size, get_backbone,
)
from skin.cards import COLOUR_CONSTANCY, CardError, read_card, split_identity
from skin.dataset import DatasetError, load_dataset, offenders, unusable_images
from skin.decision import GUARD_FIT_IMAGES
from skin.split import (check_split, make_split, read_split, seed_that_remakes, split_fingerprint,
                        write_split)
from train.config import RunConfig
from train.distill import TeacherError
from train.imagenet import DEFAULT_LOCAL_FILES, InitError

UNFREEZE_ALL = 10**6


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value}")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_options(p.add_argument_group("data"))
    add_model_options(p.add_argument_group("model"))
    add_recipe_options(p.add_argument_group("recipe"))
    add_schedule_options(p.add_argument_group("schedule"))
    add_output_options(p.add_argument_group("output"))
    return p


def parse_args(argv=None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    if args.val_fraction + args.test_fraction >= 1:
        p.error("--val-fraction and --test-fraction must leave images to train on")
    if args.distill_weight is not None and not args.teacher:
        p.error("--distill-weight needs --teacher")
    if args.teacher and args.distill_weight is None:
        args.distill_weight = 0.5
    return args


def add_data_options(data) -> None:
    data.add_argument("--data", required=True, help="HAM10000 folder (metadata.csv), a CSV "
                      "of path,label[,group], or a folder with one sub-folder per class")
    data.add_argument("--classes", help="comma-separated class codes, in order (default: "
                      "every label in the data, sorted)")
    data.add_argument("--drop-unknown", action="store_true",
                      help="drop images whose label is not in --classes instead of failing")
    data.add_argument("--split", help="split file to reuse (or create, if absent) so that "
                      "several models share one split; default: a new seeded split")
    data.add_argument("--val-fraction", type=fraction, default=0.15)
    data.add_argument("--test-fraction", type=fraction, default=0.15)
    data.add_argument("--test-source", help="put every image of this source (HAM10000's "
                      "dataset column, e.g. rosendahl) in the test split, to measure the "
                      "model on a clinic it never saw; the rest is split by lesion")


def add_model_options(model) -> None:
    model.add_argument("--backbone", required=True, help=", ".join(BACKBONES))
    model.add_argument("--img-size", type=int, required=True, help="input size in pixels")
    model.add_argument("--init", default="none", help="none (from scratch), imagenet, a "
                       "backbone weights file, or a model card of this project (transfer)")
    model.add_argument("--init-weights", metavar="PATH", help="with --init imagenet: a local "
                       "file of the ImageNet weights, used instead of Keras's download "
                       "(MobileNetV2: Google's 8-bit TensorFlow Lite model; default where "
                       "Keras cannot download: " + str(DEFAULT_LOCAL_FILES["mobilenetv2"]) + ")")
    model.add_argument("--pretrained-batchnorm", choices=("frozen", "reestimated"),
                       default="frozen", help="with pretrained weights: keep batch "
                       "normalisation frozen (inference mode) while fine-tuning, or first "
                       "re-estimate its statistics on training images, then train it")
    model.add_argument("--dropout", type=float, default=0.3)
    model.add_argument("--bn-momentum", type=float, help="batch-norm momentum (default: "
                       "0.99 from scratch, the backbone's own otherwise)")


def add_recipe_options(recipe) -> None:
    recipe.add_argument("--loss", choices=("cce", "focal"), default="cce",
                        help="cce: cross-entropy; focal: focal loss (gamma 2); both "
                        "balanced as --balance says")
    recipe.add_argument("--balance", choices=("weights", "sampling", "sampling_by_source", "none"),
                        default="weights",
                        help="how the rare classes count as much as the common ones: weights "
                        "(balanced class weights in cce, per-class alpha in focal), sampling "
                        "(batches draw every class equally often; unweighted loss), "
                        "sampling_by_source (as sampling, and within a class each source "
                        "equally often, so that a source's look does not tell its classes "
                        "apart; needs the images' sources), or none")
    recipe.add_argument("--augment", choices=("standard", "strong", "acquisition"),
                        default="standard",
                        help="augmentation: standard; strong (wider zoom, shift, brightness "
                        "and contrast, plus saturation and hue jitter); or acquisition "
                        "(standard plus defocus and JPEG re-compression); the ranges are "
                        "train/pipeline.py's AUGMENTATIONS")
    recipe.add_argument("--colour-constancy", choices=COLOUR_CONSTANCY, default="none",
                        help="shades_of_gray: divide out each image's light colour (p-norm "
                        "6) before the network, in training and serving (the card says so)")
    recipe.add_argument("--label-smoothing", type=float, default=0.0)
    recipe.add_argument("--teacher", action="append", default=[], metavar="CARD",
                        help="distil: train towards this model's probabilities on the training "
                        "images as well as the labels (a model card trained on the same split; "
                        "repeat for several, whose mean is used)")
    recipe.add_argument("--distill-weight", type=fraction, help="share of the teachers' "
                        "probabilities in each target (default 0.5; needs --teacher)")
    recipe.add_argument("--seed", type=int, default=0, help="initial weights, batch order "
                        "and augmentation (and a new split's draw)")


def add_schedule_options(fit) -> None:
    fit.add_argument("--epochs", type=positive_int, required=True, help="total epochs, both stages")
    fit.add_argument("--head-epochs", type=int, help="stage 1 epochs with the backbone "
                     "frozen (default: 0 from scratch, 5 otherwise)")
    fit.add_argument("--unfreeze", type=int, default=UNFREEZE_ALL,
                     help="backbone layers trainable in stage 2, counted from the top (default: all)")
    fit.add_argument("--unfreeze-step", type=int, default=0, help="gradual unfreezing: "
                     "this many more layers ...")
    fit.add_argument("--unfreeze-every", type=int, default=0, help="... every this many epochs")
    fit.add_argument("--batch-size", type=positive_int, default=32)
    fit.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate of the first stage")
    fit.add_argument("--fine-tune-lr", type=positive_float, help="stage 2 learning rate (default: "
                     "--lr from scratch, --lr / 10 otherwise)")
    fit.add_argument("--monitor", choices=("balanced_accuracy", "macro_f1"),
                     default="balanced_accuracy", help="validation score for early "
                     "stopping, checkpointing and learning-rate reduction")
    fit.add_argument("--patience", type=positive_int, default=8)
    fit.add_argument("--lr-schedule", choices=("plateau", "cosine"), default="cosine",
                     help="stage 2: halve the rate after --lr-patience epochs without a "
                     "better score, or a cosine to zero after --warmup-epochs")
    fit.add_argument("--lr-patience", type=positive_int, default=3)
    fit.add_argument("--warmup-epochs", type=int, default=2)
    fit.add_argument("--strategy", choices=("default", "mirrored", "multi-worker"),
                     default="default", help="tf.distribute strategy")


def add_output_options(out) -> None:
    out.add_argument("--out", required=True, help="folder for the card, weights and split.csv")
    out.add_argument("--name", help="model name (default: BACKBONE-IMGSIZE)")
    out.add_argument("--weights-dtype", choices=("float32", "float16"), default="float32",
                     help="storage of the exported weights (float16: half the size)")
    out.add_argument("--bootstrap", type=int, default=1000,
                     help="bootstrap resamples for the 95%% intervals (0: none)")
    out.add_argument("--quiet", action="store_true", help="only errors and the final summary")


def choose_split(args, dataset, out: Path) -> tuple[pd.Series, str]:
    """The split to use and where it came from: the run's own (resume), --split, or new."""
    for candidate in (out / "split.csv", Path(args.split) if args.split else None):
        if candidate and candidate.is_file():
            assignment = read_split(candidate)
            check_split(dataset.table, assignment, str(candidate))
            return assignment.loc[dataset.table["image_id"]], str(candidate)
    assignment = make_split(dataset.table, args.val_fraction, args.test_fraction, args.seed,
                            test_source=args.test_source)
    check_split(dataset.table, assignment, "just made")
    return assignment, f"new (seed {args.seed})"


def split_seed(dataset, fingerprint: str, args) -> int | None:
    """The seed that re-makes the run's split (None: none does): its own, or for a split
    file taken from another run (--split), that run's, read from the cards beside it."""
    candidates = [args.seed]
    for path in sorted(Path(args.split).parent.glob("*.json")) if args.split else ():
        try:
            seed, card_fingerprint, _ = split_identity(read_card(path))
        except CardError:  # not a model card (an ensemble record, say), or one without a split
            continue
        if card_fingerprint == fingerprint:
            candidates.append(seed)
    return seed_that_remakes(dataset.table, fingerprint, candidates, test_source=args.test_source)


@contextlib.contextmanager
def images_checked_on_failure(dataset):
    """A file that breaks after validation makes TensorFlow fail without naming it:
    check every image again and name the culprits (the run resumes once they are fixed)."""
    import tensorflow as tf
    try:
        yield
    except tf.errors.OpError:
        broken = unusable_images(dataset.table["path"].tolist())
        if not broken:
            raise
        raise DatasetError(
            "images became unusable during the run: "
            + "; ".join(offenders(problem, paths) for problem, paths in broken.items())
            + ". Fix or remove them, then run the same command again to continue."
        ) from None


def make_strategy(name: str):
    import tensorflow as tf
    return {
        "default": tf.distribute.get_strategy,
        "mirrored": tf.distribute.MirroredStrategy,
        "multi-worker": tf.distribute.MultiWorkerMirroredStrategy,
    }[name]()


def start_output(out: Path, assignment: pd.Series, shared_split: str | None) -> Path:
    """Create --out with the run's split.csv (and --split's file, if new); return the
    work folder that holds checkpoints until the card is written."""
    work = out / ".work"
    work.mkdir(parents=True, exist_ok=True)
    if not (out / "split.csv").is_file():
        write_split(assignment, out / "split.csv")
    if shared_split and not Path(shared_split).is_file():
        write_split(assignment, shared_split)
    return work


class Inputs(NamedTuple):
    """The run's tf.data pipelines and labels, one per use."""
    train: object
    steps_per_epoch: int | None  # None: one pass over the training images
    val: tuple  # (dataset, labels)
    test: tuple
    guard_fit: object  # training images, unaugmented, for the input guard


def split_parts(dataset, assignment: pd.Series, seed: int) -> dict[str, pd.DataFrame]:
    """The dataset's rows per split, with their class index `y`, plus `guard_fit`: the
    training images the input guard is fitted on."""
    table = dataset.table.assign(
        split=assignment.to_numpy(),
        y=dataset.table["label"].map({c: i for i, c in enumerate(dataset.classes)}),
    )
    parts = {name: table[table["split"] == name] for name in ("train", "val", "test")}
    parts["guard_fit"] = parts["train"].sample(min(GUARD_FIT_IMAGES, len(parts["train"])),
                                               random_state=seed)
    return parts


def make_inputs(config: RunConfig, parts: dict, batch: int, targets) -> Inputs:
    """tf.data pipelines for every split; the training one augmented, class-balanced
    with --balance sampling (and source-balanced within a class with sampling_by_source),
    and towards the teachers' `targets` when distilling."""
    from train import pipeline

    def images(name, training=False, labels=None):
        return pipeline.image_dataset(
            parts[name]["path"], parts[name]["y"] if labels is None else labels,
            len(config.classes), config.backbone, config.img_size, batch, training,
            seed=config.seed, augmentation=config.augment,
            colour_constancy=config.colour_constancy)

    if config.balance in ("sampling", "sampling_by_source"):
        strata = (pipeline.source_strata(parts["train"]["y"], parts["train"]["source"])
                  if config.balance == "sampling_by_source" else None)
        train = pipeline.class_balanced_dataset(
            parts["train"]["path"], parts["train"]["y"], len(config.classes), config.backbone,
            config.img_size, batch, seed=config.seed, augmentation=config.augment,
            targets=targets, colour_constancy=config.colour_constancy, strata=strata)
        steps_per_epoch = -(-len(parts["train"]) // batch)  # as many images as an epoch has
    else:
        train, steps_per_epoch = images("train", training=True, labels=targets), None
    return Inputs(train, steps_per_epoch, (images("val"), parts["val"]["y"].to_numpy()),
                  (images("test"), parts["test"]["y"].to_numpy()), images("guard_fit"))


def make_loss(config: RunConfig, train_labels) -> tuple:
    """(loss, class weights for fit or None), balanced as --balance says."""
    from train import fit
    weights = fit.balanced_class_weights(train_labels, len(config.classes))
    if config.balance != "weights":
        weights = np.ones_like(weights)
    return fit.make_loss(config.loss, weights, config.label_smoothing)


def best_model(config: RunConfig, work: Path):
    """The architecture rebuilt from the configuration, holding the best epoch's weights
    and no optimizer (Model.save_weights of a compiled model stores Adam's moments too)."""
    model = build_classifier(config.backbone, len(config.classes), config.img_size,
                             config.dropout)
    model.load_weights(work / "best.weights.h5")
    return model


def run(args, log) -> Path:
    import keras
    from train import distill, export, fit, imagenet, model as model_lib

    started = time.monotonic()
    keras.utils.set_random_seed(args.seed)
    check_input_size(get_backbone(args.backbone), args.img_size)
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    dataset = load_dataset(args.data, classes, args.drop_unknown)
    sources = dataset.table.get("source")
    if args.balance == "sampling_by_source" and (sources is None or (sources == "").any()):
        raise DatasetError("--balance sampling_by_source needs every image's source "
                           "(HAM10000's dataset column, or a source column in a CSV list)")
    out = Path(args.out)
    assignment, split_source = choose_split(args, dataset, out)
    log(f"data: {len(dataset.table)} images, {len(dataset.classes)} classes "
        f"({', '.join(dataset.classes)}), {dataset.layout} layout; split {split_source}: "
        + ", ".join(f"{k} {v}" for k, v in assignment.value_counts().items()))
    fingerprint = split_fingerprint(assignment)
    remaking_seed = split_seed(dataset, fingerprint, args)
    if remaking_seed is None:
        log("note: no seed re-makes this split with the default fractions, so benchmarks "
            "that re-make a card's split from its seed will refuse this model")
    teachers = distill.read_teachers(args.teacher, dataset.classes, fingerprint)
    config = RunConfig.resolve(args, dataset.classes, distill.teacher_record(teachers))
    strategy = make_strategy(config.strategy)
    with strategy.scope():
        model, init, provenance = model_lib.create_model(
            config.backbone, config.classes, config.img_size, config.init, config.dropout,
            init_weights=config.init_weights, log=log)
        if config.bn_momentum:
            model_lib.set_batchnorm_momentum(model, config.bn_momentum)

    # Everything above can fail on the user's input; only now is --out written.
    work = start_output(out, assignment, args.split)
    parts = split_parts(dataset, assignment, config.seed)
    targets = None
    if teachers:
        log(f"distilling from {', '.join(c['name'] for c in teachers)}: their targets for "
            f"{len(parts['train'])} training images (scored once, then read from .work)")
        targets = distill.cached_soft_targets(work, teachers, parts["train"]["path"],
                                              parts["train"]["y"], config.distill_weight)
    inputs = make_inputs(config, parts, config.batch_size * strategy.num_replicas_in_sync,
                         targets)
    loss, class_weight = make_loss(config, parts["train"]["y"])
    state = fit.TrainingState.resume_or_new(work, config.record())
    if config.reestimates_batchnorm and state.epochs_done == 0:
        log("re-estimating batch normalisation on "
            f"{len(parts['guard_fit'])} training images")
        imagenet.reestimate_batchnorm(model, inputs.guard_fit)
    verbose = 0 if args.quiet else (1 if sys.stdout.isatty() else 0)
    with images_checked_on_failure(dataset):
        with strategy.scope():
            fit.train(model, config.schedule, inputs.train, *inputs.val, class_weight, loss,
                      work, state, log, verbose, inputs.steps_per_epoch)
        card_path = export.export(
            best_model(config, work), args.name or f"{config.backbone}-{config.img_size}",
            out, config, init, provenance,
            export.training_record(config, state, dataset, assignment, out / "split.csv",
                                  remaking_seed),
            val=inputs.val, test=inputs.test, guard_data=inputs.guard_fit,
            n_resamples=args.bootstrap, weights_dtype=args.weights_dtype)
    shutil.rmtree(work)
    log(f"done in {time.monotonic() - started:.0f} s")
    return card_path


def main(argv=None) -> int:
    args = parse_args(argv)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    try:
        card_path = run(args, log)
    except (DatasetError, BackboneError, InitError, TeacherError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to continue", file=sys.stderr)
        return 130
    from train.export import summary_line
    print(summary_line(card_path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
