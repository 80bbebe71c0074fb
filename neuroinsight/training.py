"""Training routine: the seed's settings by default, improvements as named options.

Seed settings: categorical cross-entropy, Adam 1e-3, batch 2, mixed precision.
Mixed precision is a setting because the seed's ``mixed_float16`` is meant for
GPUs (about 5x slower than float32 on this CPU); ``mixed_bfloat16`` is the fast
choice on CPUs with AMX/AVX-512 BF16 and the slowest on CPUs without them
(:func:`fast_training_precision`, which the CLI's ``--precision auto`` asks).

A run writes, beside ``out`` (``models/NAME.keras``):

* ``NAME.keras``: the best epoch on validation (mean Dice of WT, TC, ET), without
  optimizer state;
* ``NAME.json``: model, preprocessing and training settings, split and timing;
* ``NAME.log.csv``: per-epoch loss and per-class Dice/IoU (Keras ``CSVLogger``);
* ``.NAME.backup/``: Keras ``BackupAndRestore`` state, so a killed run started
  again with ``resume=True`` continues from its last finished epoch.

Distribution: ``tf.distribute.MirroredStrategy`` is used when several GPUs are
visible. Several machines are not supported by ``fit`` in Keras 3
(``MultiWorkerMirroredStrategy`` fails there, keras-team/keras#20585); use one
machine.
"""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import keras
from keras import ops

from neuroinsight.augmentation import PRESETS, AugmentConfig
from neuroinsight.data import SliceDataset
from neuroinsight.errors import InputError
from neuroinsight.io import load_case
from neuroinsight.model import (
    NORMS,
    ModelConfig,
    build_attention_unet,
    deep_supervision_view,
    load_model,
    logits_view,
)
from neuroinsight.preprocessing import DEFAULT_PREPROCESS, N_CLASSES, PLANE_AXES, SEED_PREPROCESS, PreprocessConfig

logger = logging.getLogger(__name__)

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
#: CPU flags (``/proc/cpuinfo`` names) of native bfloat16 arithmetic.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
LOSSES = ("ce", "ce_dice", "ce_region_dice", "wce_dice")  # see LOSS_FUNCTIONS
CLASS_NAMES = ("background", "ncr", "edema", "enhancing")


def cpu_bf16_flags(cpuinfo: str | None = None) -> tuple[str, ...] | None:
    """The native-bfloat16 flags among ``cpuinfo`` (default: this machine's); None when it cannot be read."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:  # not Linux
            return None
    flags = {word for line in cpuinfo.splitlines() if line.startswith("flags") for word in line.split()}
    return tuple(f for f in BF16_CPU_FLAGS if f in flags)


def choose_training_precision(*, gpu: bool, bf16_flags: tuple[str, ...] | None) -> str:
    """The dtype policy that trains fastest: the seed's ``mixed_float16`` on a GPU, ``mixed_bfloat16``
    on a CPU with native bfloat16, ``float32`` on any other CPU.

    Without native bfloat16 the backward pass falls back to slow kernels: a batch-16 training step of
    the two-channel network ran at 0.41 slices/s in ``mixed_bfloat16`` against 4.36 in ``float32`` on a
    2-core AMD EPYC without AVX-512 (``bench/RESULTS.md``, session 44), while ``mixed_bfloat16`` was
    2-4x faster than ``float32`` on CPUs with AMX or AVX-512 BF16.
    """
    if gpu:
        return "mixed_float16"
    return "mixed_bfloat16" if bf16_flags else "float32"


def fast_training_precision() -> str:
    """:func:`choose_training_precision` for this machine."""
    import tensorflow as tf

    return choose_training_precision(gpu=bool(tf.config.list_physical_devices("GPU")), bf16_flags=cpu_bf16_flags())


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved beside the model).

    Attributes:
        preprocess: Input pipeline (its ``modalities`` fix the input channels).
        filters: Encoder filters per level.
        bottleneck: Bottleneck filters.
        norm: Normalization after each convolution (``model.NORMS``; the seed's ``none``).
        epochs: Maximum epochs.
        batch_size: Slices per step (seed: 2).
        learning_rate: Adam learning rate (seed: 1e-3).
        precision: Keras dtype policy, one of ``PRECISIONS``.
        loss: ``"ce"`` (seed), ``"ce_dice"`` (cross-entropy + soft Dice over the tumor classes),
            ``"ce_region_dice"`` (cross-entropy + soft Dice over the BraTS regions WT, TC, ET) or
            ``"wce_dice"`` (class-weighted cross-entropy, ``CLASS_WEIGHTS``, + soft Dice per class).
        augment: Name of an augmentation preset (``none``, ``flips``, ``robust``).
        deep_supervision: Also apply the loss to auxiliary outputs of decoder levels 2 and 3
            (:func:`neuroinsight.model.deep_supervision_view`), weighted as nnU-Net weights them
            (``DEEP_SUPERVISION_WEIGHTS``); the saved network is the same either way.
        extra_planes: Slicing planes whose slices join the training samples beside
            ``preprocess.plane``'s, each epoch as long as without them (``SliceDataset``); the
            network still predicts in ``preprocess.plane``.
        seed: Seeds weights, data order and augmentation.
        patience: Early-stopping patience in epochs (learning rate halves after half of it).
        select: ``"best"`` keeps the epoch with the best validation score (early stopping and
            learning-rate reduction on plateau); ``"last"`` trains all epochs under a cosine
            learning-rate decay and keeps the final weights (the best-validation epoch is
            still saved as ``NAME.best.keras``). With one or two validation patients the
            validation score swings by tenths between epochs, so ``last`` is the steadier choice.
        steps_per_epoch: Limit on steps per epoch (None: the whole training set).
    """

    preprocess: PreprocessConfig = DEFAULT_PREPROCESS
    filters: tuple[int, ...] = (32, 64, 128)
    bottleneck: int = 256
    norm: str = "none"
    epochs: int = 25
    batch_size: int = 2
    learning_rate: float = 1e-3
    precision: str = "float32"
    loss: str = "ce"
    augment: str = "none"
    deep_supervision: bool = False
    extra_planes: tuple[str, ...] = ()
    seed: int = 0
    patience: int = 8
    select: str = "best"
    steps_per_epoch: int | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {PRECISIONS}, got {self.precision!r}.")
        if self.loss not in LOSSES:
            raise InputError(f"loss must be one of {LOSSES}, got {self.loss!r}.")
        if self.select not in ("best", "last"):
            raise InputError(f"select must be best or last, got {self.select!r}.")
        if self.norm not in NORMS:
            raise InputError(f"norm must be one of {NORMS}, got {self.norm!r}.")
        if self.augment not in PRESETS:
            raise InputError(f"augment must be one of {tuple(PRESETS)}, got {self.augment!r}.")
        if self.preprocess.plane in self.extra_planes or not set(self.extra_planes) <= set(PLANE_AXES):
            raise InputError(
                f"extra planes must be other planes than {self.preprocess.plane!r} among {tuple(PLANE_AXES)}, "
                f"got {self.extra_planes!r}."
            )
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise InputError("epochs and batch size must be positive, and the learning rate above 0.")
        # Each encoder level halves the image and the decoder doubles it back: the side must
        # divide evenly, or the skip connections would not line up.
        step = 2 ** len(self.filters)
        if self.preprocess.image_size < step or self.preprocess.image_size % step:
            raise InputError(
                f"image size must be a multiple of {step} (2 to the number of encoder levels), "
                f"got {self.preprocess.image_size}; for example 128 or 160."
            )

    @property
    def model(self) -> ModelConfig:
        """The architecture this run builds."""
        return ModelConfig(
            input_channels=self.preprocess.n_channels,
            image_size=self.preprocess.image_size,
            n_classes=N_CLASSES,
            filters=self.filters,
            bottleneck=self.bottleneck,
            norm=self.norm,
        )

    def with_input(
        self, *, context: int | None = None, image_size: int | None = None, plane: str | None = None
    ) -> TrainConfig:
        """The same run with another network input; None keeps a setting.

        Args:
            context: 2.5-D input of this many neighbouring slices per side.
            image_size: Side of the square input in pixels (the seed's 128).
            plane: Slicing plane (the seed's ``axial``, or ``coronal``).
        """
        given = {"context": context, "image_size": image_size, "plane": plane}
        changes = {k: v for k, v in given.items() if v is not None}
        return replace(self, preprocess=replace(self.preprocess, **changes))

    @property
    def augmentation(self) -> AugmentConfig:
        """The augmentation preset's settings."""
        return PRESETS[self.augment]

    def to_dict(self) -> dict:
        """JSON-ready form."""
        data = asdict(self)
        data["preprocess"] = self.preprocess.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        values["preprocess"] = PreprocessConfig.from_dict(values["preprocess"])
        values["filters"] = tuple(values["filters"])
        values["extra_planes"] = tuple(values.get("extra_planes", ()))
        return cls(**values)


#: Named starting points; CLI flags override single fields.
PRESET_CONFIGS: dict[str, TrainConfig] = {
    "seed": TrainConfig(preprocess=SEED_PREPROCESS),
    "improved": TrainConfig(loss="ce_dice", augment="flips"),
    "four": TrainConfig(
        preprocess=replace(DEFAULT_PREPROCESS, modalities=("t1", "t1ce", "t2", "flair")),
        loss="ce_dice",
        augment="flips",
    ),
}


@dataclass
class TrainResult:
    """What a finished run produced."""

    model_path: Path
    epochs_run: int
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)


# --------------------------------------------------------------------------- loss and metrics


def soft_dice_loss(y_true, y_pred, smooth: float = 1.0):
    """``1 - mean soft Dice`` over the tumor classes (1..3), pooled over the batch."""
    axes = (0, 1, 2)
    intersection = ops.sum(y_true * y_pred, axis=axes)
    denominator = ops.sum(y_true + y_pred, axis=axes)
    dice = (2.0 * intersection + smooth) / (denominator + smooth)
    return 1.0 - ops.mean(dice[1:])


def cross_entropy(y_true, logits):
    """Categorical cross-entropy (the seed's loss), computed from the network's logits.

    From logits because a saturated softmax otherwise stops training: Keras clips
    probabilities at 1e-7 before the log, so a pixel whose true-class probability fell
    below that has no gradient. TensorFlow hides this by recovering the logits from its
    graph; under JAX every full-size model stalled at "all background" within a few
    steps (bench/device/README.md).
    """
    return ops.mean(keras.losses.categorical_crossentropy(y_true, ops.cast(logits, "float32"), from_logits=True))


def _probabilities(logits):
    return ops.softmax(ops.cast(logits, "float32"), axis=-1)


def ce_dice_loss(y_true, logits):
    """Categorical cross-entropy plus soft Dice: CE for calibration, Dice for the small classes."""
    return cross_entropy(y_true, logits) + soft_dice_loss(y_true, _probabilities(logits))


#: Cross-entropy weight per class for ``wce_dice``: the inverse fourth root of each class's share
#: of brain voxels over the 12 shared BraTS 2018 cases (background 92.5 %, NCR 2.4 %, edema 4.0 %,
#: ET 1.2 %). The inverse square root would weight ET 8.7x and over-call it; the fourth root
#: tilts the gradient towards the core classes without changing which class dominates a pixel.
CLASS_WEIGHTS: tuple[float, ...] = (1.0, 2.5, 2.2, 3.0)


def weighted_cross_entropy(y_true, logits, weights: tuple[float, ...] = CLASS_WEIGHTS):
    """Class-weighted categorical cross-entropy from logits, as a weighted mean over pixels.

    Each pixel's loss is scaled by its true class's weight and the sum divided by the summed
    weights (PyTorch's ``CrossEntropyLoss(weight=...)`` reduction), so the term stays on the
    scale of the plain cross-entropy and its balance with the Dice term is unchanged.
    """
    weighted_truth = ops.cast(y_true, "float32") * ops.convert_to_tensor(weights, "float32")
    log_p = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    return -ops.sum(weighted_truth * log_p) / ops.sum(weighted_truth)


def wce_dice_loss(y_true, logits):
    """Class-weighted cross-entropy plus soft Dice per tumor class."""
    return weighted_cross_entropy(y_true, logits) + soft_dice_loss(y_true, _probabilities(logits))


#: BraTS evaluation regions as model classes (label 4 is class 3).
REGION_CLASSES: dict[str, tuple[int, ...]] = {"wt": (1, 2, 3), "tc": (1, 3), "et": (3,)}


def region_dice_loss(y_true, y_pred, smooth: float = 1.0):
    """``1 - mean soft Dice`` over the nested BraTS regions, pooled over the batch.

    A region's probability is the sum of its classes' softmax outputs: the loss scores
    what the evaluation scores (region-based training, as in Isensee et al., BraTS 2018/2020).
    """
    scores = []
    for classes in REGION_CLASSES.values():
        truth = ops.sum(ops.take(y_true, classes, axis=-1), axis=-1)
        predicted = ops.sum(ops.take(y_pred, classes, axis=-1), axis=-1)
        overlap = 2.0 * ops.sum(truth * predicted) + smooth
        scores.append(overlap / (ops.sum(truth) + ops.sum(predicted) + smooth))
    return 1.0 - ops.mean(ops.stack(scores))


def ce_region_dice_loss(y_true, logits):
    """Categorical cross-entropy plus soft Dice over the BraTS regions."""
    return cross_entropy(y_true, logits) + region_dice_loss(y_true, _probabilities(logits))


#: Training losses by name; each takes the one-hot truth and the network's logits.
LOSS_FUNCTIONS = {
    "ce": cross_entropy,
    "ce_dice": ce_dice_loss,
    "ce_region_dice": ce_region_dice_loss,
    "wce_dice": wce_dice_loss,
}


#: Loss weight of the main output and of each deep-supervision head, halving with each level
#: down and summing to 1 (nnU-Net's weighting, Isensee et al. 2021).
DEEP_SUPERVISION_WEIGHTS: tuple[float, ...] = (4 / 7, 2 / 7, 1 / 7)


def deeply_supervised(loss: Callable, weights: Sequence[float] = DEEP_SUPERVISION_WEIGHTS) -> Callable:
    """``loss`` applied to each head of a :func:`neuroinsight.model.deep_supervision_view` output, weighted."""

    def combined(y_true, outputs):
        heads = ops.split(outputs, len(weights), axis=-1)
        return sum(weight * loss(y_true, head) for weight, head in zip(weights, heads, strict=True))

    combined.__name__ = f"{loss.__name__}_deeply_supervised"
    return combined


class Overlap(keras.metrics.Metric):
    """Dice or IoU of a set of classes, pooled over every pixel of the epoch.

    Pooling over the epoch (rather than averaging per batch) keeps slices without
    tumor from dominating the score. Empty truth and prediction score 1.

    Args:
        regions: One or more class tuples; the result is the mean over them.
        kind: ``"dice"`` or ``"iou"``.
        name: Metric name in logs (``val_`` is prefixed for validation).
    """

    def __init__(self, regions: Sequence[Sequence[int]], kind: str = "dice", *, name: str, **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.regions = [tuple(r) for r in regions]
        self.kind = kind
        self.intersection = self.add_variable(shape=(len(self.regions),), initializer="zeros", name="intersection")
        self.total = self.add_variable(shape=(len(self.regions),), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        # Deep supervision appends its heads' channels after the main output's: score the main one.
        y_pred = y_pred[..., : ops.shape(y_true)[-1]]
        predicted = ops.argmax(y_pred, axis=-1)
        truth = ops.argmax(y_true, axis=-1)
        inters, totals = [], []
        for region in self.regions:
            in_pred = ops.cast(ops.any(ops.stack([predicted == c for c in region]), axis=0), "float32")
            in_true = ops.cast(ops.any(ops.stack([truth == c for c in region]), axis=0), "float32")
            inters.append(ops.sum(in_pred * in_true))
            totals.append(ops.sum(in_pred) + ops.sum(in_true))
        self.intersection.assign_add(ops.stack(inters))
        self.total.assign_add(ops.stack(totals))

    def result(self):
        inter, total = self.intersection, self.total
        if self.kind == "dice":
            score = ops.where(total > 0, 2.0 * inter / ops.maximum(total, 1.0), 1.0)
        else:
            union = total - inter
            score = ops.where(union > 0, inter / ops.maximum(union, 1.0), 1.0)
        return ops.mean(score)

    def reset_state(self) -> None:
        self.intersection.assign(ops.zeros((len(self.regions),)))
        self.total.assign(ops.zeros((len(self.regions),)))


def training_metrics() -> list[keras.metrics.Metric]:
    """Dice and IoU per tumor class, Dice per BraTS region, and the model-selection score.

    ``dice_regions`` (mean Dice of WT, TC and ET) selects the best epoch: it is what the
    model is judged on, and unlike the per-class mean it does not collapse when a
    validation patient has almost no necrosis.
    """
    metrics: list[keras.metrics.Metric] = [Overlap(list(REGION_CLASSES.values()), name="dice_regions")]
    metrics += [Overlap([classes], name=f"dice_{region}") for region, classes in REGION_CLASSES.items()]
    for index in range(1, N_CLASSES):
        for kind in ("dice", "iou"):
            metrics.append(Overlap([(index,)], kind, name=f"{kind}_{CLASS_NAMES[index]}"))
    return metrics


# --------------------------------------------------------------------------- the run


def distribution_scope(name: str = "auto"):
    """The scope to build and compile a model in.

    ``MirroredStrategy`` when asked or when several GPUs are visible, else the default
    strategy. Under another Keras backend (JAX, PyTorch) there is no strategy: one device.
    """
    if keras.backend.backend() != "tensorflow":
        if name == "mirrored":
            raise InputError("--strategy mirrored needs the TensorFlow backend (KERAS_BACKEND=tensorflow).")
        return contextlib.nullcontext()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy().scope()
    if name not in ("auto", "none", "mirrored"):
        raise InputError(f"strategy must be auto, none or mirrored, got {name!r}.")
    return tf.distribute.get_strategy().scope()


class _ProgressCallback(keras.callbacks.Callback):
    def __init__(self, report: Callable[[int, int], None], epochs: int) -> None:
        super().__init__()
        self.report, self.epochs = report, epochs

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.report(epoch + 1, self.epochs)


def train(
    config: TrainConfig,
    train_dirs: Sequence[Path],
    val_dirs: Sequence[Path],
    out: Path,
    *,
    cache_dir: Path | None,
    resume: bool = False,
    strategy: str = "auto",
    verbose: int | str = "auto",
    progress: Callable[[int, int], None] | None = None,
    extra_info: dict | None = None,
) -> TrainResult:
    """Train an Attention-UNet and write the model, its settings and its log beside ``out``.

    Args:
        config: Run settings.
        train_dirs: Training case folders.
        val_dirs: Validation case folders (model selection, early stopping); may be empty
            when ``config.select`` is ``"last"``.
        out: Path of the best model (``.keras``).
        cache_dir: Preprocessed-slice cache (None: re-read each case's NIfTI files every epoch).
        resume: Continue a killed run from its backup; without a backup (none was killed),
            start afresh.
        strategy: ``auto``, ``none`` or ``mirrored``.
        verbose: Keras progress-bar setting.
        progress: Called as ``progress(epoch, epochs)`` after each epoch.
        extra_info: Merged into the JSON written beside the model (e.g. the split).
    """
    out = Path(out)
    if out.suffix != ".keras":
        raise InputError(f"--out must end in .keras, got {out.name}.")
    out.parent.mkdir(parents=True, exist_ok=True)
    backup = out.parent / f".{out.stem}.backup"
    log_path = out.with_suffix(".log.csv")
    if not (resume and backup.exists()):
        # Nothing to continue (a fresh run, or a finished one whose backup Keras deleted): an
        # old log would otherwise gain this run's epochs after its own (CSVLogger appends).
        shutil.rmtree(backup, ignore_errors=True)
        log_path.unlink(missing_ok=True)
    if not val_dirs and config.select == "best":
        raise InputError(
            "Keeping the best epoch (--select best) needs a validation patient (--n-val 1 or more);"
            " without one, keep the last epoch (--select last)."
        )
    keras.utils.set_random_seed(config.seed)
    common = {"config": config.preprocess, "batch_size": config.batch_size, "cache_dir": cache_dir}
    train_data = SliceDataset(
        train_dirs,
        shuffle=True,
        augment=config.augmentation,
        seed=config.seed,
        extra_planes=config.extra_planes,
        **common,
    )
    # Without validation patients every patient trains; nothing is logged for validation.
    val_data = SliceDataset(val_dirs, shuffle=False, seed=config.seed, **common) if val_dirs else None
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = config.learning_rate
    if config.select == "last":
        steps = config.epochs * (config.steps_per_epoch or len(train_data))
        learning_rate = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps, alpha=0.05)
    with distribution_scope(strategy):
        model = build_attention_unet(config.model, dtype_policy=config.precision)
        # Same weights as the network; the losses take logits (see cross_entropy).
        trainer = deep_supervision_view(model) if config.deep_supervision else logits_view(model)
        loss = LOSS_FUNCTIONS[config.loss]
        trainer.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=deeply_supervised(loss) if config.deep_supervision else loss,
            metrics=training_metrics(),
        )
    monitor = "val_dice_regions"
    best = out if config.select == "best" else out.with_suffix(".best.keras")
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.BackupAndRestore(str(backup), save_freq="epoch", delete_checkpoint=True),
        keras.callbacks.CSVLogger(str(log_path), append=True),
    ]
    if val_data is not None:
        callbacks.append(keras.callbacks.ModelCheckpoint(str(best), monitor=monitor, mode="max", save_best_only=True))
    if config.select == "best":
        callbacks += [
            keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=config.patience),
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor, mode="max", factor=0.5, patience=max(config.patience // 2, 1)
            ),
        ]
    if progress is not None:
        callbacks.append(_ProgressCallback(progress, config.epochs))
    started = time.perf_counter()
    history = trainer.fit(
        train_data,
        validation_data=val_data,
        epochs=config.epochs,
        steps_per_epoch=config.steps_per_epoch,
        callbacks=callbacks,
        verbose=verbose,
    )
    seconds = time.perf_counter() - started
    if config.select == "last" or not out.exists():  # (or every epoch was restored from backup)
        model.save(str(out))  # the softmax network, never compiled: no optimizer state to strip
    if val_data is not None and best.exists():  # written by ModelCheckpoint: the training view with its optimizer state
        _save_network(best, config)
    info = {
        "model": config.model.to_dict(),
        "preprocess": config.preprocess.to_dict(),
        "train": config.to_dict(),
        "train_cases": sorted(p.name for p in train_dirs),
        "val_cases": sorted(p.name for p in val_dirs),
        "train_fingerprints": case_fingerprints(train_dirs),
        "val_fingerprints": case_fingerprints(val_dirs),
        "train_slices": len(train_data.records),
        "epochs_run": len(history.epoch),
        "seconds_this_session": round(seconds, 1),
        "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores",
        "keras": keras.__version__,
    }
    info.update(extra_info or {})
    out.with_suffix(".json").write_text(json.dumps(info, indent=2, sort_keys=True))
    return TrainResult(
        out, len(history.epoch), seconds, {k: [float(v) for v in vals] for k, vals in history.history.items()}
    )


def case_fingerprints(case_dirs: Sequence[Path]) -> dict[str, str]:
    """Case folder name -> :attr:`neuroinsight.io.Case.fingerprint`, for the model's JSON.

    With them the app recognises one of the model's own patients under another name (later
    BraTS releases renamed the 2018 cases) and warns that its scores overstate accuracy.
    """
    return {Path(p).name: load_case(p).fingerprint for p in sorted(case_dirs)}


def _save_network(path: Path, config: TrainConfig) -> None:
    """Rewrite a checkpoint as the softmax network alone.

    Checkpoints hold the training view (logits, and any deep-supervision heads) and the
    optimizer state, which would double the file for no use at inference.
    """
    network = build_attention_unet(config.model, dtype_policy=config.precision)
    trained = load_model(path)
    for layer in network.layers:  # by name: the training view may hold more layers than the network
        if layer.weights:
            layer.set_weights(trained.get_layer(layer.name).get_weights())
    network.save(str(path))


def read_history(log_path: Path) -> dict[str, list[float]]:
    """A training CSV log (``NAME.log.csv``) as ``{column: values}``; empty if absent.

    Keras logs ``NA`` in the validation columns of a run without validation patients;
    those columns are left out.
    """
    import csv

    log_path = Path(log_path)
    if not log_path.exists():
        return {}
    rows = list(csv.DictReader(log_path.read_text().splitlines()))
    columns = [key for key in (rows[0] if rows else {}) if all(r[key] != "NA" for r in rows)]
    return {key: [float(r[key]) for r in rows] for key in columns}
