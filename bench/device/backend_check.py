"""Does training make progress under this Keras backend? (the JAX "all background" check)

Trains the full-size network for a few epochs on 64x64 slices 60-100 of three real cases
and prints the loss and validation Dice per epoch. Run it under each backend:

    KERAS_BACKEND=jax python bench/device/backend_check.py [DATA_DIR]
    KERAS_BACKEND=tensorflow python bench/device/backend_check.py [DATA_DIR]

A loss stuck near 0.9 from the second epoch on is the collapse described in README.md.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import keras

from neuroinsight import io
from neuroinsight.config import resolve_settings
from neuroinsight.preprocessing import DEFAULT_PREPROCESS
from neuroinsight.training import TrainConfig, train


def main() -> None:
    data_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else resolve_settings().data_dir
    cases = io.list_cases(data_dir)
    config = TrainConfig(
        preprocess=replace(DEFAULT_PREPROCESS, image_size=64, slice_range=(60, 100)),
        epochs=6,
        batch_size=8,
        loss="ce",
        augment="none",
        precision="float32",
        select="best",
    )
    with tempfile.TemporaryDirectory() as tmp:
        result = train(config, cases[:3], cases[3:4], Path(tmp) / "check.keras", cache_dir=None, verbose=0)
    print(keras.backend.backend(), "loss", [round(v, 3) for v in result.history["loss"]])
    print(keras.backend.backend(), "val_dice_regions", [round(v, 3) for v in result.history["val_dice_regions"]])


if __name__ == "__main__":
    main()
