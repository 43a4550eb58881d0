"""After training: temperature scaling on validation, evaluation on test, and the model
card with its weights, written atomically (the card last, so a card always has weights).
"""

import json
import tempfile
from pathlib import Path

import h5py
import numpy as np
from scipy.optimize import minimize_scalar

import keras
import tensorflow as tf

from skin.backbones import get_backbone, with_features
from skin.cards import CARD_FORMAT, TrainingRecord
from skin.classes import full_name
from skin.decision import make_guard, referral_rule
from skin.files import atomic_path, atomic_write_text, file_sha256
from skin.metrics import evaluate, summary_metrics
from skin.predict import calibrate, choose_uncertainty_thresholds
from skin.preprocessing import RESIZE_METHOD
from train.config import RunConfig
from train.fit import TrainingState, save_weights
from train.imagenet import Provenance


def fit_temperature(labels, probs) -> float:
    """The T in [0.05, 20] that minimises the negative log-likelihood on these labels."""
    labels = np.asarray(labels)

    def nll(log_t):
        calibrated = calibrate(probs, np.exp(log_t))
        return -np.mean(np.log(np.clip(calibrated[np.arange(len(labels)), labels], 1e-12, 1)))

    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def training_record(config: RunConfig, state: TrainingState, dataset, assignment,
                    split_file: Path, split_seed: int | None) -> TrainingRecord:
    """The card's `training` block: the run's configuration, how it went, and the data
    and split it saw (split_seed: the seed that re-makes it, None if none does)."""
    record: TrainingRecord = {
        "config": config.record(), "seed": config.seed, "epochs_run": state.epochs_done,
        "best_epoch": state.best_epoch + 1, "stopped_early": state.stopped_early,
        "seconds": round(state.seconds, 1), "data_layout": dataset.layout,
        "data_fingerprint": dataset.fingerprint(),
        "split_file": split_file.name, "split_fingerprint": file_sha256(split_file),
        "split_counts": {k: int(v) for k, v in assignment.value_counts().items()},
        "history": state.history,
    }
    if split_seed is not None:
        record["split_seed"] = split_seed
    return record


def export(model: keras.Model, name: str, out_dir: Path, config: RunConfig, init: str,
           provenance: Provenance | None, training: TrainingRecord, *, val, test, guard_data=None,
           n_resamples: int, weights_dtype: str = "float32") -> Path:
    """Write <name>.weights.h5, score the model with exactly those weights (uncompiled, as
    the card describes it), then write the card, <name>.json; return the card's path.

    `val` and `test` are (dataset, labels); `guard_data` (training images, unaugmented)
    fits the input guard, written to <name>.guard.npz; without it the card has no guard
    (`python -m train.decisions` can add one).

    With float16 storage the card also keeps the float32 model's test figures, so the
    cost of halving the file is on record (`evaluation.float32`).
    """
    (val_data, val_labels), (test_data, test_labels) = val, test
    classes = config.classes
    weights_file = out_dir / f"{name}.weights.h5"
    float32_scores = None
    if weights_dtype == "float16":
        float32_scores = summary_metrics(test_labels, model.predict(test_data, verbose=0))
        store_float16(model, weights_file)
    else:
        save_weights(model, weights_file)
    scorer = with_features(model)
    val_probs, val_features = scorer.predict(val_data, verbose=0)
    test_probs, test_features = scorer.predict(test_data, verbose=0)
    temperature = fit_temperature(val_labels, val_probs)
    val_calibrated, test_calibrated = (calibrate(p, temperature) for p in (val_probs, test_probs))
    test_eval = evaluate(test_labels, test_calibrated, classes,
                         n_resamples=n_resamples, seed=config.seed)
    evaluation = {"split": "test", **test_eval,
                  "ece_before_temperature": summary_metrics(test_labels, test_probs)["ece"]}
    if float32_scores is not None:
        evaluation["float32"] = {"note": "the same model with float32 weights, before "
                                         "temperature scaling", **float32_scores}
    card = {
        "format": CARD_FORMAT,
        "name": name,
        "backbone": config.backbone, "classes": classes, "input_size": config.img_size,
        "init": init,
        **({} if provenance is None else {"init_weights": {
            **provenance.record(), "batchnorm": config.pretrained_batchnorm}}),
        "class_names": {c: full_name(c) for c in classes},
        "preprocessing": {"resize": RESIZE_METHOD,
                          "mode": get_backbone(config.backbone).preprocessing,
                          "colour_constancy": config.colour_constancy},
        "parameters": int(model.count_params()),
        "source": {"file": weights_file.name, "sha256": file_sha256(weights_file),
                   "bytes": weights_file.stat().st_size, "dtype": weights_dtype},
        "temperature": temperature,
        "uncertainty": choose_uncertainty_thresholds(val_labels, val_calibrated),
        "referral": referral_rule(classes, val_labels, val_calibrated, test_labels,
                                  test_calibrated, n_resamples=n_resamples, seed=config.seed),
        "guard": None if guard_data is None else make_guard(
            scorer.predict(guard_data, verbose=0)[1], val_features, test_features,
            out_dir / f"{name}.guard.npz"),
        "evaluation": evaluation,
        "validation": {"split": "val", "n": int(len(val_labels)),
                       **summary_metrics(val_labels, val_calibrated)},
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "training": training,
    }
    card_path = out_dir / f"{name}.json"
    atomic_write_text(card_path, json.dumps(card, indent=1))
    return card_path


def store_float16(model: keras.Model, weights_file: Path) -> None:
    """Write the model's weights as float16 and load them back into it, so that what is
    scored from here on is what is shipped."""
    with tempfile.TemporaryDirectory(dir=weights_file.parent) as scratch:
        full = Path(scratch) / "full.weights.h5"
        model.save_weights(full)
        with atomic_path(weights_file, suffix=".weights.h5") as compact:
            to_float16(full, compact)
            model.load_weights(compact)


def to_float16(source: Path, target: Path) -> None:
    """Copy a Keras .weights.h5 file storing every float32 array as float16 (half the
    size); Keras casts them back to float32 when it loads them."""
    with h5py.File(source, "r") as src, h5py.File(target, "w") as dst:
        dst.attrs.update(src.attrs)

        def copy(name, item):
            if isinstance(item, h5py.Dataset):
                data = item[()]
                dst.create_dataset(name, data=data.astype(np.float16)
                                   if data.dtype == np.float32 else data)
            else:
                dst.require_group(name).attrs.update(item.attrs)

        src.visititems(copy)


def summary_line(card_path: Path) -> str:
    """One line with the test figures of a card and their 95% intervals."""
    card = json.loads(Path(card_path).read_text())
    ev = card["evaluation"]
    intervals = ev.get("intervals_95") or {}

    def fig(key):
        value = ev[key]
        if value is None:
            return f"{key} n/a"
        ci = intervals.get(key)
        return f"{key} {value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")

    figures = ", ".join(fig(k) for k in ("accuracy", "balanced_accuracy", "macro_f1",
                                         "top3_accuracy", "auc_ovr", "ece"))
    return f"{card['name']}: test n={ev['n']}: {figures}; card {card_path}"
