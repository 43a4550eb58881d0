"""The run configuration: every choice of `python -m train` that changes what is trained,
resolved once from the command line (defaults that depend on other options included).

Its record is the resume key, what a killed run must match to continue
(`train.fit.TrainingState`), and the card's `training.config`. An option that changes
training is a field here; the few that do not are `OUTSIDE_THE_RUN`, and a test fails
when an option is neither, so a new flag cannot silently resume an old run.
"""

from dataclasses import asdict, dataclass
from pathlib import Path

from train.fit import Schedule

# Where the results go and how they are reported, and how a new split is made (a run
# keeps the split.csv it started with): none changes what is trained.
OUTSIDE_THE_RUN = frozenset({
    "out", "name", "weights_dtype", "bootstrap", "quiet",
    "split", "val_fraction", "test_fraction", "drop_unknown",
})

# Fields added to RunConfig after runs were recorded, with their default.
ADDED_LATER = {"init_weights": None, "pretrained_batchnorm": "frozen"}

FROM_SCRATCH_BN_MOMENTUM = 0.99  # see train.model.set_batchnorm_momentum


@dataclass(frozen=True)
class RunConfig:
    data: str  # the dataset's absolute path
    classes: list  # the dataset's class codes, in output order
    backbone: str
    img_size: int
    init: str  # none (from scratch), imagenet, a weights file or a model card
    init_weights: str | None  # --init imagenet's local file (absolute), None: Keras's
    pretrained_batchnorm: str  # frozen or reestimated (pretrained weights only)
    dropout: float
    bn_momentum: float | None  # None: the backbone's own
    batch_size: int
    loss: str
    balance: str
    augment: str
    colour_constancy: str
    label_smoothing: float
    seed: int
    test_source: str | None
    teachers: list  # train.distill.teacher_record of the --teacher cards
    distill_weight: float | None
    strategy: str
    schedule: Schedule

    @classmethod
    def resolve(cls, args, classes: list[str], teachers: list[dict]) -> "RunConfig":
        """The configuration of parsed arguments, for a dataset with these classes and
        these teachers' records."""
        scratch = args.init == "none"
        reestimated = not scratch and args.pretrained_batchnorm == "reestimated"
        head_epochs = args.head_epochs if args.head_epochs is not None else (0 if scratch else 5)
        schedule = Schedule(
            epochs=args.epochs, head_epochs=min(head_epochs, args.epochs),
            unfreeze=args.unfreeze, unfreeze_step=args.unfreeze_step,
            unfreeze_every=args.unfreeze_every, learning_rate=args.lr,
            fine_tune_learning_rate=args.fine_tune_lr or (args.lr if scratch else args.lr / 10),
            patience=args.patience, lr_patience=args.lr_patience,
            lr_schedule=args.lr_schedule, warmup_epochs=args.warmup_epochs,
            monitor=args.monitor, train_batchnorm=scratch or reestimated,
        )
        return cls(
            data=str(Path(args.data).resolve()), classes=list(classes),
            backbone=args.backbone, img_size=args.img_size, init=args.init,
            init_weights=str(Path(args.init_weights).resolve()) if args.init_weights else None,
            pretrained_batchnorm=args.pretrained_batchnorm, dropout=args.dropout,
            bn_momentum=args.bn_momentum or (
                FROM_SCRATCH_BN_MOMENTUM if scratch or reestimated else None),
            batch_size=args.batch_size, loss=args.loss, balance=args.balance,
            augment=args.augment, colour_constancy=args.colour_constancy,
            label_smoothing=args.label_smoothing, seed=args.seed,
            test_source=args.test_source, teachers=list(teachers),
            distill_weight=args.distill_weight, strategy=args.strategy, schedule=schedule,
        )

    @property
    def from_scratch(self) -> bool:
        return self.init == "none"

    @property
    def reestimates_batchnorm(self) -> bool:
        return not self.from_scratch and self.pretrained_batchnorm == "reestimated"

    def record(self) -> dict:
        """As JSON keeps it: the resume key and the card's training.config. Fields added
        after runs were recorded are left out at their default, so those runs keep their key."""
        return {k: v for k, v in asdict(self).items() if ADDED_LATER.get(k, ...) != v}
