"""After training: temperature scaling on validation, evaluation on test, and the model
card with its weights, written atomically (the card last, so a card always has weights).
"""

import json
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar

import keras
import tensorflow as tf

from skin.backbones import get_backbone
from skin.cards import CARD_FORMAT
from skin.classes import full_name
from skin.files import atomic_write_text, file_sha256
from skin.metrics import evaluate, summary_metrics
from skin.preprocessing import RESIZE_METHOD
from train.fit import save_weights


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax of log(probs) / T: the calibrated probabilities of a softmax model."""
    logits = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def fit_temperature(labels, probs) -> float:
    """The T in [0.05, 20] that minimises the negative log-likelihood on these labels."""
    labels = np.asarray(labels)

    def nll(log_t):
        calibrated = apply_temperature(probs, np.exp(log_t))
        return -np.mean(np.log(np.clip(calibrated[np.arange(len(labels)), labels], 1e-12, 1)))

    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def export(model: keras.Model, name: str, out_dir: Path, card_fields: dict,
           val_data, val_labels, test_data, test_labels, n_resamples: int, seed: int) -> Path:
    """Score the model (uncompiled, as the card describes it), write <name>.weights.h5 and
    then <name>.json; return the card's path."""
    classes = card_fields["classes"]
    val_probs = model.predict(val_data, verbose=0)
    test_probs = model.predict(test_data, verbose=0)
    temperature = fit_temperature(val_labels, val_probs)
    test_eval = evaluate(test_labels, apply_temperature(test_probs, temperature), classes,
                         n_resamples=n_resamples, seed=seed)
    uncalibrated = summary_metrics(test_labels, test_probs)
    weights_file = out_dir / f"{name}.weights.h5"
    save_weights(model, weights_file)
    card = {
        "format": CARD_FORMAT,
        "name": name,
        **card_fields,
        "class_names": {c: full_name(c) for c in classes},
        "preprocessing": {"resize": RESIZE_METHOD,
                          "mode": get_backbone(card_fields["backbone"]).preprocessing},
        "parameters": int(model.count_params()),
        "source": {"file": weights_file.name, "sha256": file_sha256(weights_file),
                   "bytes": weights_file.stat().st_size, "dtype": "float32"},
        "temperature": temperature,
        "evaluation": {"split": "test", **test_eval,
                       "ece_before_temperature": uncalibrated["ece"]},
        "validation": {"split": "val", "n": int(len(val_labels)),
                       **summary_metrics(val_labels, apply_temperature(val_probs, temperature))},
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    card_path = out_dir / f"{name}.json"
    atomic_write_text(card_path, json.dumps(card, indent=1))
    return card_path


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
