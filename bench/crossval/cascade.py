"""Does a second network on the tumor's crop (a two-stage cascade) sharpen tumor core and enhancing tumor?

The BraTS 2019 winner (Jiang et al., "Two-stage cascaded U-Net") segments the tumor coarsely
first and then again inside a crop around it. Here stage 1 is a cross-validation fold model read
as the app reads it (flip TTA, tuned region decoding, largest component). Stage 2 is an
Attention-UNet of the same design, trained on the same fold's training patients, on in-plane
crops around each patient's ground-truth whole tumor (a square around the tumor's bounding box
over all slices, margin drawn from 8 to 24 voxels, centre shifted up to 8 voxels, side at least
64), resized to the network's 128 pixels. Stage 1 sees the brain's bounding square (about 160
voxels) at 128 pixels; stage 2 sees a typical 80-voxel tumor square at the same 128, about twice
the in-plane resolution where tumor core and the thin enhancing rim are decided.

At test time the crop is the square around stage 1's whole tumor with a 16-voxel margin over
its slices and 2 more on each side. Inside stage 1's whole tumor, core and enhancing tumor are
decided from stage 2's flip-averaged probabilities (region decoding at halves: P(core) > P(edema),
P(ET) > P(NCR)); the whole tumor stays stage 1's, so WT Dice cannot change. Rows: ``tta`` ``flip``
with ``post`` ``largest+regions-tuned`` for stage 1 alone, ``cascade`` for the two stages, so
``crossval-table --variant RECIPE flip cascade --against RECIPE flip largest+regions-tuned``
compares them on the same patients.

    PYTHONPATH=. python bench/crossval/cascade.py --models WORK/improved+flips-carvemix+val0_fold0.keras \
        --work /tmp/cascade --out bench/crossval/cascade_fold0.csv
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from numpy.typing import NDArray

from bench.crossval.scoring import fold_test_cases, variant_rows
from neuroinsight import io
from neuroinsight.augmentation import PRESETS, augment_slice
from neuroinsight.config import DEFAULT_DATA_DIR
from neuroinsight.crossval import POST_VARIANTS
from neuroinsight.model import build_attention_unet, load_model, logits_view
from neuroinsight.pipeline import rows_to_csv
from neuroinsight.preprocessing import (
    HALF,
    N_CLASSES,
    CropBox,
    RegionThresholds,
    bounding_box,
    brain_box,
    brain_mask,
    decode_labels,
    labels_to_classes,
    one_hot,
    resize_plane,
    zscore,
)
from neuroinsight.training import LOSS_FUNCTIONS, TrainConfig

#: Stage 1's decoding and post-processing, by its name in the cross-validation tables.
POST = "largest+regions-tuned"
MIN_SIDE = 64  # voxels: a small tumor's crop is not blown up beyond 2x
TEST_MARGIN = 16
Z_MARGIN = 2


@dataclass
class TumorCrops:
    """One training patient: z-scored channels ``(X, Y, z, C)`` and classes ``(X, Y, z)`` around its tumor."""

    images: NDArray[np.float32]
    classes: NDArray[np.uint8]
    box: CropBox  # the tumor's bounding square (no margin), in the arrays' coordinates


def normalised(case: io.Case, modalities: tuple[str, ...]) -> NDArray[np.float32]:
    """Channels z-scored over the brain, as stage 1 normalises them, ``(X, Y, Z, C)``."""
    brain = brain_mask(case.images)
    return np.stack([zscore(np.maximum(case.images[m], 0), brain) for m in modalities], axis=-1)


def grown(square: CropBox, margin: int, shift: tuple[int, int] = (0, 0)) -> CropBox:
    """``square`` plus ``margin`` on each side (side at least ``MIN_SIDE``), its centre moved by ``shift``."""
    side = max(square.size_x, MIN_SIDE - 2 * margin) + 2 * margin
    cx, cy = square.x0 + square.size_x // 2 + shift[0], square.y0 + square.size_y // 2 + shift[1]
    return CropBox(int(cx - side // 2), int(cy - side // 2), side, side)


def tumor_square(mask: NDArray[np.bool_], margin: int) -> tuple[CropBox, slice]:
    """In-plane square around a 3-D mask's bounding box plus ``margin`` (side at least ``MIN_SIDE``)
    and the mask's z range plus ``Z_MARGIN``."""
    zs = bounding_box(mask)[2]
    z = slice(max(zs.start - Z_MARGIN, 0), min(zs.stop + Z_MARGIN, mask.shape[2]))
    return grown(brain_box(mask, 0), margin), z


def load_crops(case_dir: Path, modalities: tuple[str, ...], pad: int = 40) -> TumorCrops:
    """The patient's tumor region with ``pad`` voxels of room around it for jittered crops."""
    case = io.load_case(case_dir)
    tumor = case.label > 0
    box, z = tumor_square(tumor, 0)
    room = CropBox(box.x0 - pad, box.y0 - pad, box.size_x + 2 * pad, box.size_y + 2 * pad)
    images = room.crop(normalised(case, modalities)[:, :, z])
    classes = room.crop(labels_to_classes(case.label)[:, :, z])
    return TumorCrops(images, classes, CropBox(pad, pad, box.size_x, box.size_y))


class CropDataset(keras.utils.PyDataset):
    """Batches of jittered tumor crops, one epoch = every stored slice once, reshuffled each epoch."""

    def __init__(self, crops: list[TumorCrops], *, size: int, batch_size: int, seed: int) -> None:
        super().__init__()
        self.crops, self.size, self.batch_size = crops, size, batch_size
        self.rng = np.random.default_rng(seed)
        self.records = np.array([(c, z) for c, crop in enumerate(crops) for z in range(crop.images.shape[2])])
        self.order = self.rng.permutation(len(self.records))
        self.augment = PRESETS["flips"]

    def __len__(self) -> int:
        return math.ceil(len(self.records) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        images, classes = [], []
        for record in self.order[index * self.batch_size : (index + 1) * self.batch_size]:
            crop = self.crops[self.records[record, 0]]
            z = self.records[record, 1]
            margin = int(self.rng.integers(8, 25))  # drawn before the shift, as the committed runs drew them
            shift = self.rng.integers(-8, 9, 2)
            window = grown(crop.box, margin, (int(shift[0]), int(shift[1])))
            image = resize_plane(window.crop(crop.images[:, :, z]), (self.size, self.size))
            label = resize_plane(window.crop(crop.classes[:, :, z]), (self.size, self.size), nearest=True)
            image, label = augment_slice(image.astype(np.float32), label, self.augment, self.rng)
            images.append(image)
            classes.append(label)
        return np.stack(images), one_hot(np.stack(classes), N_CLASSES)

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.records))


def train_stage2(config: TrainConfig, case_dirs: list[Path], out: Path, epochs: int) -> keras.Model:
    """Train (or load, when ``out`` exists) the stage-2 network, with stage 1's loss, optimiser and schedule."""
    if out.exists():
        return load_model(out)
    keras.utils.set_random_seed(config.seed)
    crops = [load_crops(d, config.preprocess.modalities) for d in case_dirs]
    data = CropDataset(crops, size=config.preprocess.image_size, batch_size=config.batch_size, seed=config.seed)
    print(f"stage 2: {len(data.records)} slices from {len(crops)} patients", flush=True)
    model = build_attention_unet(config.model, dtype_policy=config.precision)
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, epochs * len(data), alpha=0.05)
    trainer = logits_view(model)
    trainer.compile(optimizer=keras.optimizers.Adam(schedule), loss=LOSS_FUNCTIONS[config.loss])
    trainer.fit(data, epochs=epochs, verbose=2, callbacks=[keras.callbacks.CSVLogger(str(out.with_suffix(".log.csv")))])
    model.save(str(out))
    return model


def refine(
    labels: NDArray[np.uint8],
    normalised_case: NDArray[np.float32],
    stage2: keras.Model,
    size: int,
    thresholds: RegionThresholds = HALF,
) -> NDArray:
    """Stage 1's labels with core and enhancing tumor re-decided by stage 2 inside stage 1's whole tumor."""
    tumor = labels > 0
    if not tumor.any():
        return labels
    box, z = tumor_square(tumor, TEST_MARGIN)
    crop = box.crop(normalised_case[:, :, z])  # (side, side, nz, C)
    batch = np.stack([resize_plane(crop[:, :, i], (size, size)) for i in range(crop.shape[2])])
    probs = np.asarray(stage2.predict(batch, batch_size=16, verbose=0), dtype=np.float32)
    mirrored = np.asarray(stage2.predict(batch[:, ::-1], batch_size=16, verbose=0), dtype=np.float32)[:, ::-1]
    probs = (probs + mirrored) / 2
    restored = np.stack([resize_plane(p, (box.size_x, box.size_y)) for p in probs], axis=2)  # (side, side, nz, K)
    inner = decode_labels(restored, "regions", thresholds)
    refined = labels.copy()
    window = box.uncrop(inner, labels.shape[:2])  # (X, Y, nz)
    region = refined[:, :, z]
    keep = region > 0
    region[keep] = np.where(window[keep] > 0, window[keep], 2)  # stage 2 calls it background: edema (stage 1's tumor)
    return refined


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, nargs="+", required=True, help="stage-1 fold models (.keras with JSON)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--work", type=Path, required=True, help="folder for the stage-2 models")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument(
        "--decoding",
        choices=["halves", "tuned"],
        default="halves",
        help="stage 2's region thresholds (rows cascade[-tuned])",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    thresholds = HALF if args.decoding == "halves" else POST_VARIANTS[POST].region_thresholds
    name = "cascade" if args.decoding == "halves" else "cascade-tuned"

    folders = {p.name: p for p in io.list_cases(args.data)}
    rows: list[dict[str, object]] = []
    trained_for, stage2 = None, None
    for path, stage1, case in fold_test_cases(args.models, args.data):
        config = TrainConfig.from_dict(stage1.info["train"])
        if path != trained_for:  # one stage 2 per fold, on that fold's training patients
            out = args.work / f"{path.stem}.stage2.keras"
            out.parent.mkdir(parents=True, exist_ok=True)
            stage2 = train_stage2(config, [folders[c] for c in stage1.info["split"]["train"]], out, args.epochs)
            trained_for = path
        segmentation = stage1.segment(case, tta=True, attention=False, post=POST_VARIANTS[POST])
        normalised_case = normalised(case, config.preprocess.modalities)
        refined = refine(segmentation.labels, normalised_case, stage2, config.preprocess.image_size, thresholds)
        for post, labels in ((POST, segmentation.labels), (name, refined)):
            rows += variant_rows(case, labels, stage1, tta="flip", post=post)
        # Written after every patient, so a killed run keeps what it scored.
        args.out.write_text(rows_to_csv(rows, ("preset", "tta", "post", "fold")))


if __name__ == "__main__":
    main()
