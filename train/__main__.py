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

import numpy as np
import pandas as pd

from skin.backbones import (
    BACKBONES, BackboneError, build_classifier, check_input_size, get_backbone,
)
from skin.cards import COLOUR_CONSTANCY
from skin.decision import GUARD_FIT_IMAGES
from skin.files import file_sha256
from train.data import DatasetError, load_dataset, offenders, unusable_images
from train.distill import TeacherError
from train.model import InitError
from train.split import check_split, make_split, read_split, split_fingerprint, write_split

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


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_argument_group("data")
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
    model = p.add_argument_group("model")
    model.add_argument("--backbone", required=True, help=", ".join(BACKBONES))
    model.add_argument("--img-size", type=int, required=True, help="input size in pixels")
    model.add_argument("--init", default="none", help="none (from scratch), imagenet, a "
                       "backbone weights file, or a model card of this project (transfer)")
    model.add_argument("--dropout", type=float, default=0.3)
    model.add_argument("--bn-momentum", type=float, help="batch-norm momentum (default: "
                       "0.99 from scratch, the backbone's own otherwise)")
    fit = p.add_argument_group("schedule")
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
    fit.add_argument("--loss", choices=("cce", "focal"), default="cce",
                     help="cce: cross-entropy; focal: focal loss (gamma 2); both "
                     "balanced as --balance says")
    fit.add_argument("--balance", choices=("weights", "sampling", "none"), default="weights",
                     help="how the rare classes count as much as the common ones: weights "
                     "(balanced class weights in cce, per-class alpha in focal), sampling "
                     "(batches draw every class equally often; unweighted loss), or none")
    fit.add_argument("--augment", choices=("standard", "strong"), default="standard",
                     help="augmentation strength: standard, or strong (wider zoom, shift, "
                     "brightness and contrast, plus saturation and hue jitter); the ranges "
                     "are train/pipeline.py's AUGMENTATIONS")
    fit.add_argument("--colour-constancy", choices=COLOUR_CONSTANCY, default="none",
                     help="shades_of_gray: divide out each image's light colour (p-norm "
                     "6) before the network, in training and serving (the card says so)")
    fit.add_argument("--label-smoothing", type=float, default=0.0)
    fit.add_argument("--teacher", action="append", default=[], metavar="CARD",
                     help="distil: train towards this model's probabilities on the training "
                     "images as well as the labels (a model card trained on the same split; "
                     "repeat for several, whose mean is used)")
    fit.add_argument("--distill-weight", type=fraction, help="share of the teachers' "
                     "probabilities in each target (default 0.5; needs --teacher)")
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
    out = p.add_argument_group("output")
    out.add_argument("--out", required=True, help="folder for the card, weights and split.csv")
    out.add_argument("--name", help="model name (default: BACKBONE-IMGSIZE)")
    out.add_argument("--weights-dtype", choices=("float32", "float16"), default="float32",
                     help="storage of the exported weights (float16: half the size)")
    out.add_argument("--bootstrap", type=int, default=1000,
                     help="bootstrap resamples for the 95%% intervals (0: none)")
    out.add_argument("--seed", type=int, default=0)
    out.add_argument("--quiet", action="store_true", help="only errors and the final summary")
    args = p.parse_args(argv)
    if args.val_fraction + args.test_fraction >= 1:
        p.error("--val-fraction and --test-fraction must leave images to train on")
    if args.distill_weight is not None and not args.teacher:
        p.error("--distill-weight needs --teacher")
    if args.teacher and args.distill_weight is None:
        args.distill_weight = 0.5
    return args


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


def export_best(args, backbone, dataset, init, config, state, assignment, out,
                val_data, val_labels, test_data, test_labels, guard_data) -> Path:
    """Score the best epoch's weights and write the card, its weights and nothing else."""
    from train import export

    # The architecture rebuilt from what the card will say, holding the best weights and
    # no optimizer (Model.save_weights of a compiled model stores Adam's moments too).
    best = build_classifier(backbone.name, len(dataset.classes), args.img_size, args.dropout)
    best.load_weights(out / ".work" / "best.weights.h5")

    name = args.name or f"{backbone.name}-{args.img_size}"
    return export.export(
        best, name, out,
        {
            "backbone": backbone.name, "classes": list(dataset.classes),
            "input_size": args.img_size, "init": init,
            "preprocessing": {"colour_constancy": args.colour_constancy},
            "training": {
                "config": config, "seed": args.seed, "epochs_run": state.epochs_done,
                "best_epoch": state.best_epoch + 1, "stopped_early": state.stopped_early,
                "seconds": round(state.seconds, 1), "data_layout": dataset.layout,
                "data_fingerprint": dataset.fingerprint(),
                "split_file": "split.csv", "split_fingerprint": file_sha256(out / "split.csv"),
                "split_counts": {k: int(v) for k, v in assignment.value_counts().items()},
                "history": state.history,
            },
        },
        val_data, val_labels.to_numpy(), test_data, test_labels.to_numpy(),
        n_resamples=args.bootstrap, seed=args.seed, weights_dtype=args.weights_dtype,
        guard_data=guard_data,
    )


def run(args, log) -> Path:
    import keras
    from train import distill, fit, model as model_lib, pipeline

    started = time.monotonic()
    keras.utils.set_random_seed(args.seed)
    backbone = get_backbone(args.backbone)
    check_input_size(backbone, args.img_size)
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    dataset = load_dataset(args.data, classes, args.drop_unknown)
    out = Path(args.out)
    assignment, split_source = choose_split(args, dataset, out)
    log(f"data: {len(dataset.table)} images, {len(dataset.classes)} classes "
        f"({', '.join(dataset.classes)}), {dataset.layout} layout; split {split_source}: "
        + ", ".join(f"{k} {v}" for k, v in assignment.value_counts().items()))
    teachers = distill.read_teachers(args.teacher, dataset.classes, split_fingerprint(assignment))

    scratch = args.init == "none"
    strategy = make_strategy(args.strategy)
    with strategy.scope():
        model, init = model_lib.create_model(backbone.name, dataset.classes, args.img_size,
                                             args.init, args.dropout)
        momentum = args.bn_momentum or (0.99 if scratch else None)
        if momentum:
            model_lib.set_batchnorm_momentum(model, momentum)

    # Everything above can fail on the user's input; only now is --out written.
    work = out / ".work"
    work.mkdir(parents=True, exist_ok=True)
    if not (out / "split.csv").is_file():
        write_split(assignment, out / "split.csv")
    if args.split and not Path(args.split).is_file():
        write_split(assignment, args.split)

    table = dataset.table.assign(
        split=assignment.to_numpy(),
        y=dataset.table["label"].map({c: i for i, c in enumerate(dataset.classes)}),
    )
    parts = {name: table[table["split"] == name] for name in ("train", "val", "test")}
    parts["guard_fit"] = parts["train"].sample(min(GUARD_FIT_IMAGES, len(parts["train"])),
                                               random_state=args.seed)
    batch = args.batch_size * strategy.num_replicas_in_sync

    def data(name, training=False, targets=None):
        labels = parts[name]["y"] if targets is None else targets
        return pipeline.image_dataset(parts[name]["path"], labels,
                                      len(dataset.classes), backbone.name, args.img_size,
                                      batch, training, seed=args.seed,
                                      augmentation=args.augment,
                                      colour_constancy=args.colour_constancy)

    val_data, test_data = data("val"), data("test")
    targets = None
    if teachers:
        log(f"distilling from {', '.join(c['name'] for c in teachers)}: their targets for "
            f"{len(parts['train'])} training images (scored once, then read from .work)")
        targets = distill.cached_soft_targets(work, teachers, parts["train"]["path"],
                                              parts["train"]["y"], args.distill_weight)
    if args.balance == "sampling":
        train_data = pipeline.class_balanced_dataset(
            parts["train"]["path"], parts["train"]["y"], len(dataset.classes), backbone.name,
            args.img_size, batch, seed=args.seed, augmentation=args.augment, targets=targets,
            colour_constancy=args.colour_constancy)
        steps_per_epoch = -(-len(parts["train"]) // batch)  # as many images as an epoch has
    else:
        train_data, steps_per_epoch = data("train", training=True, targets=targets), None
    weights = fit.balanced_class_weights(parts["train"]["y"], len(dataset.classes))
    if args.balance != "weights":
        weights = np.ones_like(weights)
    loss, class_weight = fit.make_loss(args.loss, weights, args.label_smoothing)
    head_epochs = args.head_epochs if args.head_epochs is not None else (0 if scratch else 5)
    schedule = fit.Schedule(
        epochs=args.epochs, head_epochs=min(head_epochs, args.epochs), unfreeze=args.unfreeze,
        unfreeze_step=args.unfreeze_step, unfreeze_every=args.unfreeze_every,
        learning_rate=args.lr,
        fine_tune_learning_rate=args.fine_tune_lr or (args.lr if scratch else args.lr / 10),
        patience=args.patience, lr_patience=args.lr_patience, lr_schedule=args.lr_schedule,
        warmup_epochs=args.warmup_epochs, monitor=args.monitor,
        train_batchnorm=scratch,
    )
    config = {
        "data": str(Path(args.data).resolve()), "classes": list(dataset.classes),
        "backbone": backbone.name, "img_size": args.img_size, "init": args.init,
        "dropout": args.dropout, "bn_momentum": momentum, "batch_size": args.batch_size,
        "loss": args.loss, "balance": args.balance, "augment": args.augment,
        "colour_constancy": args.colour_constancy,
        "label_smoothing": args.label_smoothing, "seed": args.seed,
        "test_source": args.test_source,
        "teachers": distill.teacher_record(teachers), "distill_weight": args.distill_weight,
        "strategy": args.strategy, "schedule": schedule.__dict__,
    }
    state = fit.TrainingState.resume_or_new(work, config)
    verbose = 0 if args.quiet else (1 if sys.stdout.isatty() else 0)
    with images_checked_on_failure(dataset):
        with strategy.scope():
            fit.train(model, schedule, train_data, val_data, parts["val"]["y"].to_numpy(),
                      class_weight, loss, work, state, log, verbose, steps_per_epoch)
        card_path = export_best(args, backbone, dataset, init, config, state, assignment, out,
                                val_data, parts["val"]["y"], test_data, parts["test"]["y"],
                                data("guard_fit"))
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
