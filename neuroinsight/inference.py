"""Segment a whole case in native space with a trained Attention-UNet.

:class:`Segmenter` loads a model once and turns a :class:`~neuroinsight.io.Case`
into a :class:`Segmentation` on the case's canonical grid (write it back on the
source grid with :func:`neuroinsight.io.save_label_map`). Every axial slice is
handled: slices without brain are skipped (their voxels are background), the
others go through the same preprocessing as in training; probabilities are
resized back first and decoded into labels afterwards (argmax, or the nested
BraTS regions), so resizing never invents labels. Voxels outside the brain mask
are never labelled tumor.

Optional test-time augmentation averages the prediction with its left-right
mirror and yields a voxel-wise uncertainty map (normalised entropy of the mean
probabilities, 0 = certain, 1 = uniform). :meth:`Segmenter.ensemble` averages
several models' probabilities the same way (both shipped models when all four
modalities are present: better whole tumor and core under cross-validation, twice
the network time; see the model card).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from neuroinsight.augmentation import PRESETS as AUGMENT_PRESETS
from neuroinsight.config import DEFAULT_PRECISION
from neuroinsight.errors import InputError
from neuroinsight.io import MODALITIES, NO_CONTRAST_MODALITIES, Case
from neuroinsight.metrics import BRATS_REGIONS
from neuroinsight.preprocessing import (
    CLASS_TO_LABEL,
    DECODINGS,
    HALF,
    N_CLASSES,
    PreparedVolume,
    PreprocessConfig,
    RegionThresholds,
    bounding_box,
    prepare_volume,
    resize_plane,
    restore_label_slices,
    restore_labels,
    restore_probabilities,
)

logger = logging.getLogger(__name__)

#: Shipped models, most capable first: (file name, modalities it needs). They may form an ensemble.
SHIPPED_MODELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("attention_unet_4mod.keras", MODALITIES),
    ("attention_unet.keras", ("t1ce", "flair")),
)
#: The fallback for a scan without contrast agent, used only when no shipped model above can run.
#: Trained with modality dropout, it gets a blank T1ce channel; under cross-validation its whole
#: tumor stayed as good as with T1ce, its core and enhancing tumor did not (``without_t1ce`` in its JSON).
NO_CONTRAST_MODEL: tuple[str, tuple[str, ...]] = ("attention_unet_nocontrast.keras", NO_CONTRAST_MODALITIES)
BATCH_SLICES = 16


@dataclass(frozen=True)
class PostprocessConfig:
    """How the network's probabilities become the final label map: decoding, then clean-ups
    (BraTS practice).

    Attributes:
        decoding: ``argmax`` or ``regions`` (:func:`~neuroinsight.preprocessing.decode_labels`);
            applied by :meth:`Segmenter.segment`, not by :func:`postprocess`.
        region_thresholds: With ``regions``: whole tumor where P(tumor) exceeds the first,
            core where the core's share of it exceeds the second, enhancing where its share of
            the core exceeds the third.
        min_component_ml: Whole-tumor connected components smaller than this are removed (0: off).
        largest_component_only: Keep only the largest whole-tumor component.
        core_island_fraction: Tumor-core (NCR + ET) islands smaller than this fraction of the
            largest one become edema, so the whole tumor is unchanged (0: off; 1: keep the
            largest core island only).
        min_enhancing_ml: If the total enhancing volume is below this, relabel it as NCR/NET (0: off).
    """

    decoding: str = "argmax"
    region_thresholds: RegionThresholds = HALF
    min_component_ml: float = 0.0
    largest_component_only: bool = False
    core_island_fraction: float = 0.0
    min_enhancing_ml: float = 0.0

    def __post_init__(self) -> None:
        if self.decoding not in DECODINGS:
            raise InputError(f"decoding must be one of {', '.join(DECODINGS)}, got {self.decoding!r}.")
        if len(self.region_thresholds) != 3 or not all(0 < t < 1 for t in self.region_thresholds):
            raise InputError(f"Region thresholds must be three numbers between 0 and 1, got {self.region_thresholds}.")
        if not 0 <= self.core_island_fraction <= 1:
            raise InputError(f"The core island fraction must be between 0 and 1, got {self.core_island_fraction}.")


NO_POSTPROCESS = PostprocessConfig()
#: What the app and the CLI apply unless told otherwise. Keeping the largest whole-tumor
#: component gave the best HD95 and the best Dice (or within 0.003) of every recipe under
#: cross-validation (models/MODEL_CARD.md) by removing stray false positives far from the
#: tumor; it would drop a genuinely separate second lesion (multifocal glioma). Region decoding
#: raised mean WT and TC Dice of every recipe and ensemble there, by 0.001-0.010, and left ET
#: within 0.002. Its thresholds were then chosen on the cross-validation predictions of both
#: shipped recipes (bench/crossval/thresholds.py): the networks under-call tumor and core, and a
#: lower bar for both raised WT and TC in nested cross-validation (+0.002..0.012 and +0.022..0.025).
TUNED_THRESHOLDS: RegionThresholds = (0.2, 0.1, 0.5)
#: Within the kept tumor, core islands under 30 % of the largest one become edema: in six
#: cross-validated recipes this raised TC and ET Dice of each (+0.002..+0.012, +0.000..+0.015)
#: and never cost a patient more than 0.003 TC; keeping the largest core island only gained more
#: on average but cut a real 17 cm3 piece of one patient's core (bench/crossval/core_components.py).
CORE_ISLAND_FRACTION = 0.3
#: The cross-validation tables' name for the default before that step: numbers recorded under it
#: (the shipped recipes' cross-validation) were measured without it.
BEFORE_CORE_ISLANDS = "largest+regions-tuned"
DEFAULT_POSTPROCESS = PostprocessConfig(
    decoding="regions",
    region_thresholds=TUNED_THRESHOLDS,
    largest_component_only=True,
    core_island_fraction=CORE_ISLAND_FRACTION,
)


@dataclass
class Segmentation:
    """A segmentation result on the case's canonical grid.

    Attributes:
        labels: uint8 ``(X, Y, Z)``, BraTS labels ``{0, 1, 2, 4}``.
        batch_probabilities: ``(slice indices, float32 (n, S, S, 4))`` per forward batch, as the
            network returned them; :attr:`network_probabilities` and :attr:`probabilities` assemble
            them on demand (most callers never need the whole array).
        brain: bool ``(X, Y, Z)`` brain mask.
        uncertainty: float16 ``(X, Y, Z)`` in [0, 1] with test-time augmentation, else None.
        model_name: File name of the model that ran.
        modalities: The case's modalities the model read.
        blanked: Channels the model was given blank because the case lacks them (see
            :func:`trained_with_modality_dropout`); with ``t1ce`` among them only the whole tumor
            is reliable.
        seconds: Wall time of :meth:`Segmenter.segment`.
        post: The decoding and clean-ups that produced :attr:`labels`.
    """

    labels: NDArray[np.uint8]
    batch_probabilities: list[tuple[NDArray[np.intp], NDArray[np.float32]]] = field(repr=False)
    brain: NDArray[np.bool_] = field(repr=False)
    model_name: str
    modalities: tuple[str, ...]
    seconds: float
    uncertainty: NDArray[np.float16] | None = field(default=None, repr=False)
    attention: dict[int, NDArray[np.float16]] = field(default_factory=dict, repr=False)
    prepared: PreparedVolume | None = field(default=None, repr=False)
    post: PostprocessConfig = NO_POSTPROCESS
    blanked: tuple[str, ...] = ()

    @property
    def without_contrast(self) -> bool:
        """True when T1ce was missing: the core and enhancing tumor are then unreliable."""
        return "t1ce" in self.blanked

    @property
    def network_probabilities(self) -> NDArray[np.float32]:
        """float32 ``(Z, S, S, 4)`` class probabilities at the network's resolution (background 1
        on slices without brain)."""
        if self.prepared is None:
            raise RuntimeError("Segmentation was built without its PreparedVolume")
        n_z, size = len(self.prepared.has_brain), self.prepared.channels.shape[2]
        probs = np.zeros((n_z, size, size, N_CLASSES), dtype=np.float32)
        probs[..., 0] = 1.0
        for index, batch in self.batch_probabilities:
            probs[index] = batch
        return probs

    @property
    def probabilities(self) -> NDArray[np.float32]:
        """Class probabilities ``(X, Y, Z, 4)`` on the full canonical grid (built on demand)."""
        return restore_probabilities(self.network_probabilities, self.prepared)  # type: ignore[arg-type]

    @property
    def tta(self) -> bool:
        """Whether flip test-time augmentation ran: it is what leaves an uncertainty map."""
        return self.uncertainty is not None

    @functools.cached_property
    def region_probabilities(self) -> dict[str, NDArray[np.uint8]]:
        """P(WT), P(TC), P(ET) per voxel on the canonical grid, in steps of 1/255, 0 outside the brain.

        Each region's probability is the sum of its classes' (WT = NCR + ED + ET, ...), before
        decoding and post-processing: it shows how sure the network was where :attr:`labels`
        drew, or did not draw, a boundary. Built on first use (about 1 s for a BraTS case) and
        kept: 3 bytes per voxel, a quarter of the float32 probabilities.
        """
        probs = self.probabilities
        brain = self.prepared.canonical_brain  # type: ignore[union-attr]
        regions = {}
        for region, labels in BRATS_REGIONS.items():
            summed = sum(probs[..., CLASS_TO_LABEL.index(label)] for label in labels)
            regions[region] = np.where(brain, np.rint(np.clip(summed, 0, 1) * 255), 0).astype(np.uint8)
        return regions

    def attention_slice(self, level: int, z: int) -> NDArray[np.float32]:
        """Attention coefficients of gate ``level`` (1 = finest) on axial slice ``z``, as ``(X, Y)``.

        Returns zeros where the slice had no brain or attention was not recorded, and for a
        model of another plane (its gates sit on its own slices).
        """
        prepared = self.prepared
        if prepared is None or level not in self.attention or prepared.plane != "axial":
            return np.zeros(self.labels.shape[:2], dtype=np.float32)
        alpha = self.attention[level][z].astype(np.float32)
        box = prepared.box
        window = resize_plane(alpha, (box.size_x, box.size_y))
        return box.uncrop(window, prepared.full_shape[:2], fill=0.0)


#: Core islands are 26-connected (touching at a corner counts), as measured in
#: bench/crossval/core_components.py, so that a thin enhancing rim stays one island.
_NEIGHBOURS_26 = np.ones((3, 3, 3), dtype=bool)


def _relabel_components(
    part: NDArray[np.uint8],
    mask: NDArray[np.bool_],
    dropped: Callable[[NDArray[np.intp]], NDArray[np.bool_]],
    value: int,
    structure: NDArray[np.bool_] | None = None,
) -> None:
    """Set ``part`` to ``value`` on the connected components of ``mask`` that ``dropped`` picks.

    ``dropped`` gets the components' voxel counts (component ``i`` at index ``i - 1``) and
    returns which to relabel.
    """
    components, count = ndimage.label(mask, structure=structure)
    if count == 0:
        return
    sizes = np.bincount(components.ravel(), minlength=count + 1)[1:]
    part[np.concatenate([[False], dropped(sizes)])[components]] = value


def postprocess(
    labels: NDArray[np.uint8], config: PostprocessConfig, voxel_ml: float, *, in_place: bool = False
) -> NDArray[np.uint8]:
    """Apply the clean-ups of :class:`PostprocessConfig` to a BraTS label map (a new array unless ``in_place``).

    The label map is already decoded (``config.decoding`` is applied by :meth:`Segmenter.segment`).
    """
    if not in_place:
        labels = labels.copy(order="K")  # keep the Fortran layout: a transposing copy costs ~40 ms
    if (config.min_component_ml > 0 or config.largest_component_only) and labels.any():
        part = labels[bounding_box(labels)]  # label components only where tumor is

        def dropped(sizes: NDArray[np.intp]) -> NDArray[np.bool_]:
            if config.largest_component_only:
                return np.arange(len(sizes)) != int(np.argmax(sizes))
            return sizes * voxel_ml < config.min_component_ml

        _relabel_components(part, part > 0, dropped, 0)
    if config.core_island_fraction > 0 and labels.any():
        part = labels[bounding_box(labels)]
        fraction = config.core_island_fraction
        _relabel_components(
            part, (part == 1) | (part == 4), lambda sizes: sizes < fraction * sizes.max(), 2, _NEIGHBOURS_26
        )
    if config.min_enhancing_ml > 0:
        enhancing = labels == 4
        if 0 < enhancing.sum() * voxel_ml < config.min_enhancing_ml:
            labels[enhancing] = 1
    return labels


def decoding_stages(segmentation: Segmentation, voxel_ml: float) -> dict[str, NDArray[np.uint8]]:
    """The label map after each step from network probabilities to ``segmentation.labels``.

    For teaching what decoding and post-processing do: the most probable class per voxel, then
    each step of ``segmentation.post`` in the order :func:`postprocess` applies it (nested-region
    decoding, the whole-tumor component rule, the core-island rule, small enhancing tumor as
    core). The last entry equals ``segmentation.labels``.
    """
    post, prepared = segmentation.post, segmentation.prepared
    if prepared is None:
        raise RuntimeError("Segmentation was built without its PreparedVolume")
    probs = segmentation.network_probabilities
    labels = restore_labels(probs, prepared)
    stages = {"most probable class": labels}
    if post.decoding == "regions":
        labels = restore_labels(probs, prepared, "regions", post.region_thresholds)
        stages["nested BraTS regions"] = labels
    steps = (
        (
            "largest tumor component" if post.largest_component_only else "small tumor components removed",
            PostprocessConfig(
                min_component_ml=post.min_component_ml, largest_component_only=post.largest_component_only
            ),
        ),
        ("small core islands made edema", PostprocessConfig(core_island_fraction=post.core_island_fraction)),
        ("small enhancing tumor made core", PostprocessConfig(min_enhancing_ml=post.min_enhancing_ml)),
    )
    for name, step in steps:
        if step != NO_POSTPROCESS:
            labels = postprocess(labels, step, voxel_ml)
            stages[name] = labels
    return stages


def _normalised_entropy(probs: NDArray[np.float32]) -> NDArray[np.float32]:
    p = np.clip(probs, 1e-7, 1.0)
    return (-(p * np.log(p)).sum(axis=-1) / np.log(probs.shape[-1])).astype(np.float32)


class Segmenter:
    """A loaded model plus its preprocessing settings; thread-safe for prediction.

    Args:
        model: A Keras Attention-UNet.
        preprocess: The preprocessing it was trained with.
        name: Shown in results, history and reports.
        info: The training sidecar JSON (settings, split, measured metrics).
    """

    def __init__(self, model, preprocess: PreprocessConfig, *, name: str, info: Mapping | None = None) -> None:
        from neuroinsight.model import with_attention_outputs

        self.model = model
        self.with_attention = with_attention_outputs(model)
        self.preprocess = preprocess
        self.name = name
        self.info = dict(info or {})
        # (network, its attention view, its input channels): one entry, or one per ensemble member
        self.members: list[tuple[object, object, slice | list[int]]] = [(model, self.with_attention, slice(None))]
        # Trained with modality dropout: a missing modality becomes the blank channel it learned from.
        self.blank_missing = trained_with_modality_dropout(self.info)

    @classmethod
    def from_path(cls, path: str | Path, *, precision: str = DEFAULT_PRECISION) -> Segmenter:
        """Load a ``.keras`` model (``safe_mode=True``) and the JSON beside it.

        Args:
            path: The model file.
            precision: ``float32`` or ``mixed_bfloat16`` for the forward pass.
        """
        from neuroinsight.model import load_model, with_precision

        path = Path(path)
        logger.info("loading model %s (%s)", path, precision)
        if not path.exists():
            raise InputError(
                f"Model {path} not found. Train one with `python -m neuroinsight train` or set NEUROINSIGHT_MODELS."
            )
        info = read_model_info(path)
        preprocess = PreprocessConfig.from_dict(info["preprocess"]) if "preprocess" in info else PreprocessConfig()
        model = with_precision(load_model(path), precision)
        info["inference_precision"] = precision
        return cls(model, preprocess, name=path.name, info=info)

    @classmethod
    def ensemble(cls, segmenters: Sequence[Segmenter]) -> Segmenter:
        """One segmenter that averages the class probabilities of several models (one is returned as is).

        The first model's preprocessing prepares the input once; every other member must
        need a subset of its modalities and otherwise the same settings, so it gets exactly
        the channels it was trained on (the brain mask, crop and z-score per channel do not
        depend on which channels a model reads). Attention maps are the first model's.
        The model card measures the shipped pair under cross-validation (``ensemble_crossval``
        in the first model's JSON, shown as the ensemble's accuracy).

        Raises:
            InputError: A member needs another modality or other preprocessing settings.
        """
        first = segmenters[0]
        if len(segmenters) == 1:
            return first
        modalities = first.preprocess.modalities
        for other in segmenters[1:]:
            same_settings = dataclasses.replace(other.preprocess, modalities=modalities) == first.preprocess
            if not same_settings or not set(other.preprocess.modalities) <= set(modalities):
                raise InputError(
                    f"{other.name} cannot join an ensemble led by {first.name}: it needs other modalities "
                    "or other preprocessing settings."
                )
        combined = copy.copy(first)
        combined.name = " + ".join(s.name for s in segmenters)
        combined.members = [
            (s.model, s.with_attention, first.preprocess.channel_indices(s.preprocess.modalities)) for s in segmenters
        ]
        # The first model's recipe numbers do not describe the ensemble: only its own are shown.
        combined.info = {k: v for k, v in first.info.items() if k != "crossval"}
        combined.info["ensemble"] = [{"model": s.name, "modalities": list(s.preprocess.modalities)} for s in segmenters]
        if first.info.get("ensemble_crossval"):
            combined.info["crossval"] = first.info["ensemble_crossval"]
        for key in ("train_cases", "val_cases"):  # a patient any member saw counts as seen
            combined.info[key] = sorted({c for s in segmenters for c in s.info.get(key, ())})
        for key in ("train_fingerprints", "val_fingerprints"):
            combined.info[key] = {c: f for s in segmenters for c, f in s.info.get(key, {}).items()}
        return combined

    def prepare(self, case: Case) -> PreparedVolume:
        """The case's network input, preprocessed as this model was trained.

        Raises:
            InputError: The case lacks a modality this model cannot do without.
        """
        try:
            return prepare_volume(case.images, self.preprocess, blank_missing=self.blank_missing)
        except InputError as err:
            raise InputError(
                f"{self.name} cannot segment {case.case_id}: {err} Use a model for its modalities."
            ) from err

    def predict_slices(self, slices: NDArray[np.float32], *, attention: bool = False) -> list[NDArray[np.float32]]:
        """Forward ``(B, S, S, C)`` slices; returns ``[probs]`` or ``[probs, alpha_1, ...]``.

        Runs Keras' compiled predict function (about 3x faster than eager calls here);
        batches are padded to ``BATCH_SLICES`` so the graph is traced once, not per size.
        An ensemble returns its members' mean probabilities and the first member's attention.
        """
        n = len(slices)
        padded = slices
        if n != BATCH_SLICES:
            padded = np.zeros((max(BATCH_SLICES, n), *slices.shape[1:]), dtype=np.float32)
            padded[:n] = slices
        outputs: list[NDArray[np.float32]] = []
        for model, with_attention, channels in self.members:
            net = with_attention if attention and not outputs else model
            result = net.predict_on_batch(padded[..., channels])  # type: ignore[attr-defined]
            result = result if isinstance(result, list | tuple) else [result]
            if outputs:
                outputs[0] = outputs[0] + np.asarray(result[0], dtype=np.float32)[:n]
            else:
                outputs = [np.asarray(o, dtype=np.float32)[:n] for o in result]
        if len(self.members) > 1:
            outputs[0] = outputs[0] / len(self.members)
        return outputs

    def segment(
        self,
        case: Case,
        *,
        tta: bool = False,
        attention: bool = True,
        post: PostprocessConfig = NO_POSTPROCESS,
        progress: Callable[[int, int], None] | None = None,
    ) -> Segmentation:
        """Segment every slice of a case.

        Args:
            case: The case (needs the model's modalities).
            tta: Average with the left-right mirrored prediction and compute uncertainty.
            attention: Record the attention-gate coefficients per slice.
            post: Decoding and post-processing of the label map (default: argmax, no clean-ups).
            progress: Called as ``progress(done, total)`` over the batches.
        """
        started = time.perf_counter()
        prepared = self.prepare(case)
        n_z, size = prepared.channels.shape[1:3]
        labels = np.zeros(case.shape, dtype=np.uint8, order="F")  # see restore_labels
        uncertainty = np.zeros((n_z, size, size), dtype=np.float32) if tta else None
        gates: dict[int, NDArray[np.float16]] = {}
        todo = np.nonzero(prepared.has_brain)[0]
        batches = [todo[i : i + BATCH_SLICES] for i in range(0, len(todo), BATCH_SLICES)]
        buffer = np.empty((BATCH_SLICES, size, size, prepared.n_channels), dtype=np.float32)
        batch_probabilities = []
        for done, index in enumerate(batches, start=1):
            batch = prepared.batch(index, out=buffer[: len(index)])
            outputs = self.predict_slices(batch, attention=attention)
            batch_probs = outputs[0]
            if tta:
                mirrored = self.predict_slices(batch[:, ::-1], attention=False)[0][:, ::-1]
                batch_probs = (batch_probs + mirrored) / 2
                uncertainty[index] = _normalised_entropy(batch_probs)  # type: ignore[index]
            batch_probabilities.append((index, batch_probs))
            for level, alpha in enumerate(outputs[1:], start=1):
                store = gates.setdefault(level, np.zeros((n_z, *alpha.shape[1:3]), dtype=np.float16))
                store[index] = alpha[..., 0]
            if progress is not None:
                progress(done, len(batches))
        # Resized back after the network, two batches at a time: the network keeps both cores
        # busy while it runs (a helper thread beside it was measured slower), these two threads do
        # after it.
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(
                pool.map(
                    lambda item: restore_label_slices(
                        item[1], item[0], prepared, labels, post.decoding, post.region_thresholds
                    ),
                    batch_probabilities,
                )
            )
        labels = postprocess(labels, post, case.voxel_volume_ml, in_place=True)
        full_uncertainty = None
        if uncertainty is not None:
            restored = restore_probabilities(uncertainty[..., None], prepared)[..., 0]
            full_uncertainty = np.where(prepared.canonical_brain, restored, 0).astype(np.float16)
        return Segmentation(
            labels=labels,
            batch_probabilities=batch_probabilities,
            brain=prepared.canonical_brain,
            model_name=self.name,
            modalities=tuple(m for m in self.preprocess.modalities if m in case.images),
            blanked=tuple(m for m in self.preprocess.modalities if m not in case.images),
            seconds=time.perf_counter() - started,
            uncertainty=full_uncertainty,
            attention=gates,
            prepared=prepared,
            post=post,
        )


def available_models(models_dir: Path) -> list[tuple[Path, tuple[str, ...]]]:
    """Shipped models present in ``models_dir`` with the modalities each needs, the no-contrast one last."""
    every = (*SHIPPED_MODELS, NO_CONTRAST_MODEL)
    return [(models_dir / name, mods) for name, mods in every if (models_dir / name).exists()]


def choose_models(models_dir: Path, modalities: tuple[str, ...], *, ensemble: bool = False) -> list[Path]:
    """:func:`choose_model`'s model; with ``ensemble`` every shipped model the case can feed (most capable first).

    The no-contrast model never joins an ensemble: it is only measured alone, without T1ce.
    """
    if not ensemble:
        return [choose_model(models_dir, modalities)]
    members = {name for name, _ in SHIPPED_MODELS}
    paths = [
        path
        for path, needs in available_models(models_dir)
        if path.name in members and all(m in modalities for m in needs)
    ]
    return paths or [choose_model(models_dir, modalities)]  # none fits: choose_model says why


def choose_model(models_dir: Path, modalities: tuple[str, ...]) -> Path:
    """The four-modality model when all four are present, else the two-channel (T1ce + FLAIR) one;
    without T1ce, the no-contrast model when T1, T2 and FLAIR are present."""
    for path, needs in available_models(models_dir):
        if all(m in modalities for m in needs):
            return path
    raise InputError(
        f"No model in {models_dir} can run on {', '.join(modalities)}: T1ce and FLAIR are needed "
        f"(or T1, T2 and FLAIR with {NO_CONTRAST_MODEL[0]}). Add them, or check NEUROINSIGHT_MODELS."
    )


def trained_with_modality_dropout(info: Mapping) -> bool:
    """Whether the model's training JSON names an augmentation that blanked whole modalities."""
    augment = AUGMENT_PRESETS.get(info.get("train", {}).get("augment", "none"))
    return augment is not None and augment.modality_dropout > 0


def read_model_info(path: str | Path) -> dict:
    """The JSON written beside a model by training (``<model>.json``); empty if absent."""
    sidecar = Path(path).with_suffix(".json")
    return json.loads(sidecar.read_text()) if sidecar.exists() else {}


def update_model_info(path: str | Path, key: str, value: dict) -> None:
    """Set one entry of the JSON beside a model (e.g. measured metrics), keeping the rest."""
    sidecar = Path(path).with_suffix(".json")
    info = read_model_info(path)
    info[key] = value
    sidecar.write_text(json.dumps(info, indent=2, sort_keys=True))


def training_role(info: Mapping, case: Case) -> str:
    """``"training"`` or ``"validation"`` if the model saw this patient while it was trained, else ``"no"``
    (the words the history and the metrics CSV store).

    Scores on such a patient overstate what to expect on a new one; the cross-validated
    numbers (:func:`accuracy_text`) do not. Patients are matched by case identifier, in the
    split and the case lists that training writes into the model's JSON, and by
    :attr:`Case.fingerprint` (identical FLAIR voxels), which recognises a renamed copy.
    """
    return _seen(info, case)[0] or "no"


def _seen(info: Mapping, case: Case) -> tuple[str | None, str]:
    """The role in which the model saw ``case`` (or None) and that patient's name in its training."""
    split = info.get("split", {})
    for role, part, cases in (("training", "train", "train_cases"), ("validation", "val", "val_cases")):
        if case.case_id in (*split.get(part, ()), *info.get(cases, ())):
            return role, case.case_id
        fingerprints = info.get(f"{part}_fingerprints", {})
        if fingerprints and case.fingerprint:  # hash the scan only when there is something to match
            named = [name for name, seen in fingerprints.items() if seen == case.fingerprint]
            if named:
                return role, named[0]
    return None, ""


def crossval_per_patient(info: Mapping) -> dict[str, dict[str, float]]:
    """Each cross-validation patient's Dice per region, scored by the fold model that never saw it.

    Empty for a model whose JSON has no cross-validation, or one recorded before per-patient
    numbers were kept (``crossval-table --record`` writes them).
    """
    return {case: dict(dice) for case, dice in info.get("crossval", {}).get("per_patient", {}).items()}


def crossval_rows(info: Mapping) -> list[dict[str, object]]:
    """:func:`crossval_per_patient` as rows (case, region, dice), the form the metrics figures take."""
    return [
        {"case": case, "region": region, "dice": dice}
        for case, by_region in crossval_per_patient(info).items()
        for region, dice in by_region.items()
    ]


def crossval_choices(models_dir: Path) -> dict[str, dict]:
    """Label -> model information, for each shipped model (and the opt-in ensemble) whose
    cross-validation kept per-patient numbers; ``info["crossval"]`` is the one to show."""
    choices = {}
    for path, _ in available_models(models_dir):
        info = read_model_info(path)
        if crossval_per_patient(info):
            choices[path.name] = info
        if info.get("ensemble_crossval", {}).get("per_patient"):
            choices[f"ensemble led by {path.name}"] = {**info, "crossval": info["ensemble_crossval"]}
    return choices


def held_out_dice(info: Mapping, case: Case) -> tuple[str, dict[str, float]]:
    """For a patient the model trained on: its name there and its Dice when held out in the
    cross-validation of the model's recipe; ``("", {})`` for any other case."""
    role, name = _seen(info, case)
    dice = crossval_per_patient(info).get(name, {}) if role is not None else {}
    return (name, dice) if dice else ("", {})


def seen_patient_note(info: Mapping, case: Case) -> str:
    """A warning sentence when ``case`` was among the model's own patients; empty otherwise.

    Where the cross-validation kept per-patient numbers, it also says what a model of the
    same recipe scored on this patient without having seen it: the honest number for it.
    """
    role, name = _seen(info, case)
    if role is None:
        return ""
    who = case.case_id if name == case.case_id else f"{case.case_id} has the same FLAIR voxels as {name}, which"
    note = (
        f"{who} was one of this model's {role} patients, so its scores here overstate the accuracy to expect "
        "on a new patient; the cross-validated accuracy in the model card is the fair estimate."
    )
    dice = crossval_per_patient(info).get(name, {})
    if dice:
        cells = ", ".join(f"{region} {dice[region]:.2f}" for region in ("WT", "TC", "ET") if region in dice)
        note += f" Held out in that cross-validation, {name} scored Dice {cells}."
    return note


def _crossval_text(cv: Mapping, condition: str = "") -> str:
    """One cross-validation entry of a model's JSON as words: mean Dice ± SD per region, folds, patients.

    Entries recorded since intervals were added also give each mean's 95 % bootstrap interval,
    which says how far the mean could move on other patients.
    """
    cells = []
    for region in ("WT", "TC", "ET"):
        cell = f"{region} {cv['dice'][region]:.2f} \u00b1 {cv['dice_sd'][region]:.2f}"
        if "dice_ci" in cv:
            low, high = cv["dice_ci"][region]
            cell += f" (95 % CI {low:.2f}-{high:.2f})"
        cells.append(cell)
    patients = f"({cv['patients']} patients)" + (f" {condition}" if condition else "")
    text = f"mean Dice \u00b1 SD in {cv['folds']}-fold cross-validation of its recipe {patients} {', '.join(cells)}"
    if cv.get("post") == BEFORE_CORE_ISLANDS:
        text += " (measured before small tumor-core islands were relabelled edema, a step that raised TC slightly)"
    return text


def no_contrast_note(info: Mapping) -> str:
    """What a segmentation without T1ce can be trusted for, with the accuracy measured for it."""
    measured = info.get("without_t1ce")
    accuracy = f" Measured: {_crossval_text(measured, 'without T1ce')}." if measured else ""
    return (
        "No T1ce (contrast-enhanced T1) was given, so the model ran with that channel blank: only the whole "
        "tumor outline is reliable; the necrotic core, the enhancing tumor and the tumor core are not, and "
        f"the grade is not estimated (both need contrast).{accuracy}"
    )


def accuracy_text(info: Mapping) -> str:
    """The measured accuracy recorded in a model's JSON, as one sentence for users.

    Cross-validated numbers (``crossval``) come first: they cover every patient; the
    held-out test patients (``test_metrics``) are too few to stand alone.
    """
    parts = []
    if info.get("crossval"):
        parts.append(_crossval_text(info["crossval"]))
    if info.get("without_t1ce"):  # the no-contrast model: how the app runs it
        parts.append(_crossval_text(info["without_t1ce"], "without T1ce"))
    tested = info.get("test_metrics", {})
    split = info.get("split", {})
    if tested.get("dice"):
        cells = ", ".join(f"{r} {tested['dice'][r]:.3f}" for r in ("WT", "TC", "ET") if r in tested["dice"])
        parts.append(f"on its {len(tested.get('cases', []))} held-out test patients {cells}")
    elif split and not split.get("test"):
        # nnU-Net's practice: cross-validate the recipe, then train the shipped model on every case.
        n_cases = len(split.get("train", [])) + len(split.get("val", []))
        parts.append(f"this model was then trained on all {n_cases} patients, so none is left to test it on")
    return "; ".join(parts) if parts else "not measured yet"
