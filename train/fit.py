"""The training schedule: stages, callbacks, losses, and resume after an interruption.

Stage 1 trains the head on a frozen backbone; stage 2 unfreezes the last N layers at a
lower learning rate, optionally K more every E epochs (gradual unfreezing). Each block
of epochs with one trainable set is a `Phase`, compiled and fitted on its own.

The stage-2 learning rate either halves after a plateau of validation scores ("plateau")
or follows a cosine from its start value to zero over the stage's epochs after a linear
warm-up ("cosine"). The cosine is a function of the epoch number alone, so a resumed run
picks it up where it stopped.

Early stopping, best-weights checkpointing and learning-rate reduction live in one
callback, `Monitor`, rather than Keras's EarlyStopping / ModelCheckpoint /
ReduceLROnPlateau: their counters reset at every `fit` call, and here they must carry
across phases and across a killed-and-restarted run. Monitor scores the validation split
in inference mode with skin.metrics, so the monitored figure is the one that is reported.
"""

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from skin.files import atomic_path, atomic_write_text
from skin.metrics import summary_metrics
from train.model import backbone_layers, set_trainable


@dataclass(frozen=True)
class Schedule:
    epochs: int
    head_epochs: int  # stage 1: backbone frozen
    unfreeze: int  # stage 2 starts with this many trainable backbone layers
    unfreeze_step: int  # gradual unfreezing: this many more ...
    unfreeze_every: int  # ... every this many epochs (0: never)
    learning_rate: float
    fine_tune_learning_rate: float
    patience: int  # early stopping, in epochs without a better validation score
    lr_patience: int  # "plateau": halve the learning rate after this many such epochs
    lr_schedule: str  # "plateau" or "cosine"
    warmup_epochs: int  # "cosine": linear warm-up at the start of stage 2
    monitor: str  # balanced_accuracy or macro_f1
    train_batchnorm: bool


@dataclass(frozen=True)
class Phase:
    stage: int
    start: int
    end: int
    trainable_layers: int
    learning_rate: float


def plan_phases(schedule: Schedule, n_backbone_layers: int) -> list[Phase]:
    phases = []
    if schedule.head_epochs:
        phases.append(Phase(1, 0, min(schedule.head_epochs, schedule.epochs), 0,
                            schedule.learning_rate))
    epoch, unfrozen = schedule.head_epochs, schedule.unfreeze
    gradual = schedule.unfreeze_step and schedule.unfreeze_every
    while epoch < schedule.epochs:
        end = min(epoch + schedule.unfreeze_every, schedule.epochs) if gradual else schedule.epochs
        phases.append(Phase(2, epoch, end, min(unfrozen, n_backbone_layers),
                            schedule.fine_tune_learning_rate))
        epoch, unfrozen = end, unfrozen + schedule.unfreeze_step
    return phases


def cosine_learning_rate(schedule: Schedule, epoch: int) -> float:
    """Stage 2's learning rate at (0-based) epoch: linear warm-up, then cosine to zero."""
    start, peak = schedule.head_epochs, schedule.fine_tune_learning_rate
    step = epoch - start
    if step < schedule.warmup_epochs:
        return peak * (step + 1) / (schedule.warmup_epochs + 1)
    decay_epochs = max(schedule.epochs - start - schedule.warmup_epochs, 1)
    progress = (step - schedule.warmup_epochs) / decay_epochs
    return peak * 0.5 * (1 + np.cos(np.pi * progress))


def make_loss(name: str, class_weights: np.ndarray, label_smoothing: float):
    """(loss, per-class weights for fit or None). Focal loss carries the class balance in
    its alpha (normalised inverse frequencies), so it gets no class_weight on top."""
    if name == "focal":
        alpha = (class_weights / class_weights.sum()).tolist()
        return keras.losses.CategoricalFocalCrossentropy(
            alpha=alpha, gamma=2.0, label_smoothing=label_smoothing), None
    return keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing), \
        dict(enumerate(class_weights.tolist()))


def balanced_class_weights(labels, num_classes: int) -> np.ndarray:
    return compute_class_weight("balanced", classes=np.arange(num_classes), y=np.asarray(labels))


# Resumable state ---------------------------------------------------------------------

@dataclass
class TrainingState:
    """Everything needed to continue a killed run at the next epoch (work_dir/state.json;
    the weights with the optimizer's state are in work_dir/last.weights.h5)."""
    config: dict
    epochs_done: int = 0
    best_score: float = -1.0
    best_epoch: int = -1
    wait: int = 0
    stage: int = 0
    learning_rate: float = 0.0
    stopped_early: bool = False
    seconds: float = 0.0
    history: list = None

    @classmethod
    def resume_or_new(cls, work_dir: Path, config: dict) -> "TrainingState":
        """Continue the saved run if it had this configuration, or one that differs only
        in early-stopping patience (which changes nothing already done); else start anew."""
        path = work_dir / "state.json"
        if path.is_file() and (work_dir / "last.weights.h5").is_file():
            saved = json.loads(path.read_text())
            if _without_patience(saved["config"]) == _without_patience(config):
                saved["config"] = config
                return cls(**saved)
        return cls(config=config, history=[])

    def save(self, work_dir: Path) -> None:
        atomic_write_text(work_dir / "state.json", json.dumps(asdict(self), indent=1))


def _without_patience(config: dict) -> dict:
    return {**config, "schedule": {k: v for k, v in config["schedule"].items() if k != "patience"}}


class Monitor(keras.callbacks.Callback):
    """Each epoch: the learning rate (the cosine's value at its start, or halved after a
    plateau at its end), validation metrics, best checkpoint, early stopping, and the
    resume checkpoint (weights first, then the state that names them)."""

    def __init__(self, state, schedule, work_dir, val_data, val_labels, log, min_lr=1e-6):
        super().__init__()
        self.state, self.schedule, self.work_dir = state, schedule, work_dir
        self.val_data, self.val_labels, self.log, self.min_lr = val_data, val_labels, log, min_lr
        self.epoch_started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.monotonic()
        if self.follows_cosine():
            self.state.learning_rate = float(cosine_learning_rate(self.schedule, epoch))
            self.model.optimizer.learning_rate = self.state.learning_rate

    def follows_cosine(self) -> bool:
        return self.schedule.lr_schedule == "cosine" and self.state.stage == 2

    def on_epoch_end(self, epoch, logs=None):
        probs = self.model.predict(self.val_data, verbose=0)
        scores = summary_metrics(self.val_labels, probs)
        n_predicted = len(np.unique(probs.argmax(axis=1)))
        state = self.state
        score = scores[self.schedule.monitor]
        if score > state.best_score + 1e-4:
            state.best_score, state.best_epoch, state.wait = score, epoch, 0
            save_weights(self.model, self.work_dir / "best.weights.h5")
        else:
            state.wait += 1
            if not self.follows_cosine() and state.wait % self.schedule.lr_patience == 0:
                state.learning_rate = max(state.learning_rate / 2, self.min_lr)
                self.model.optimizer.learning_rate = state.learning_rate
            if state.wait >= self.schedule.patience:
                state.stopped_early = self.model.stop_training = True
        seconds = time.monotonic() - self.epoch_started
        record = {
            "epoch": epoch + 1, "stage": state.stage, "seconds": round(seconds, 1),
            "trainable_backbone_layers": sum(l.trainable for l in backbone_layers(self.model)),
            "learning_rate": state.learning_rate,
            "loss": logs.get("loss"), "accuracy": logs.get("accuracy"),
            **{f"val_{k}": scores[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")},
            "val_classes_predicted": n_predicted,
        }
        logs.update({k: v for k, v in record.items() if k.startswith("val_")})
        state.history.append(record)
        state.epochs_done, state.seconds = epoch + 1, state.seconds + seconds
        save_weights(self.model, self.work_dir / "last.weights.h5")
        state.save(self.work_dir)
        self.log(
            f"epoch {epoch + 1}/{self.schedule.epochs} stage {state.stage}  "
            f"loss {record['loss']:.4f} acc {record['accuracy']:.3f}  |  val acc "
            f"{scores['accuracy']:.3f} bal_acc {scores['balanced_accuracy']:.3f} "
            f"macro_f1 {scores['macro_f1']:.3f} classes predicted "
            f"{n_predicted}/{probs.shape[1]}  |  lr {record['learning_rate']:.2g}  "
            f"best {state.best_score:.3f} (epoch {state.best_epoch + 1})  {seconds:.0f} s"
        )


def save_weights(model: keras.Model, path: Path) -> None:
    with atomic_path(path, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)


def train(model, schedule, train_data, val_data, val_labels, class_weights, loss,
          work_dir: Path, state: TrainingState, log, verbose: int,
          steps_per_epoch: int | None = None) -> TrainingState:
    """Run (or continue) the schedule; the best weights end in work_dir/best.weights.h5.
    steps_per_epoch: the length of an epoch when train_data is endless (class-balanced
    sampling); None: one pass over train_data."""
    monitor = Monitor(state, schedule, work_dir, val_data, val_labels, log)
    resuming = state.epochs_done > 0
    for phase in plan_phases(schedule, len(backbone_layers(model))):
        if state.stopped_early or phase.end <= state.epochs_done:
            continue
        if phase.stage != state.stage:
            state.stage, state.learning_rate = phase.stage, phase.learning_rate
        set_trainable(model, phase.trainable_layers, schedule.train_batchnorm)
        model.compile(optimizer=keras.optimizers.Adam(state.learning_rate), loss=loss,
                      metrics=["accuracy"])
        if resuming:
            if state.epochs_done > phase.start:  # same trainable set: restore Adam's moments
                model.optimizer.build(model.trainable_variables)
            model.load_weights(work_dir / "last.weights.h5")
            log(f"resuming after epoch {state.epochs_done} (best so far "
                f"{state.best_score:.3f} at epoch {state.best_epoch + 1})")
            resuming = False
        log(f"stage {phase.stage}: epochs {max(phase.start, state.epochs_done) + 1}-"
            f"{phase.end}, {phase.trainable_layers} backbone layers trainable, "
            f"learning rate {state.learning_rate:.2g}")
        model.fit(train_data, initial_epoch=max(phase.start, state.epochs_done),
                  epochs=phase.end, steps_per_epoch=steps_per_epoch, class_weight=class_weights,
                  callbacks=[monitor], shuffle=False, verbose=verbose)  # tf.data shuffles; fit's own shuffle is ignored
    return state
