"""Shared fixtures: small seeded phantom cases, a tiny model, an isolated NEUROINSIGHT_HOME."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

# Isolate the history and caches of the whole test session before the package reads settings.
_HOME = Path(tempfile.mkdtemp(prefix="neuroinsight-test-home-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ["NEUROINSIGHT_HOME"] = str(_HOME)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from neuroinsight import io, phantom  # noqa: E402
from neuroinsight.config import DEFAULT_DATA_DIR  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("NEUROINSIGHT_DATA", DEFAULT_DATA_DIR))
HAS_REAL_DATA = DATA_DIR.is_dir() and any(DATA_DIR.glob("*/*_seg.nii.gz"))
requires_real_data = pytest.mark.skipif(
    not HAS_REAL_DATA, reason=f"real BraTS cases not found in {DATA_DIR} (set NEUROINSIGHT_DATA)"
)
SMALL_SHAPE = (64, 64, 40)


def small_case(seed: int = 0, **kwargs) -> io.Case:
    """A 64x64x40 phantom with a tumor big enough to see at that size."""
    kwargs.setdefault("tumor_radius_mm", 10.0)
    return phantom.make_case(seed=seed, shape=SMALL_SHAPE, **kwargs)


def ras_copy(folder: Path, target: Path) -> Path:
    """Re-save every NIfTI of a case folder in RAS orientation (same data, other grid order)."""
    import nibabel as nib

    target.mkdir(parents=True, exist_ok=True)
    for path in folder.glob("*.nii.gz"):
        nib.save(nib.as_closest_canonical(nib.load(path)), target / path.name)
    return target


def tiny_model_args(model_path: Path) -> list[str]:
    """CLI flags that run the tiny test model in float32."""
    return ["--model", str(model_path), "--precision", "float32"]


@pytest.fixture(scope="session")
def home() -> Path:
    return _HOME


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory) -> Path:
    """A small phantom written as a BraTS folder."""
    return io.save_case(small_case(seed=1), tmp_path_factory.mktemp("phantom") / "phantom_1")


@pytest.fixture(scope="session")
def phantom_data_dir(tmp_path_factory) -> Path:
    """A data folder of six small phantoms (four 'HGG', two 'LGG') with grades.csv."""
    root = tmp_path_factory.mktemp("phantom_data")
    lines = ["case,grade"]
    for seed in range(6):
        case = small_case(seed=seed, case_id=f"ph{seed}")
        io.save_case(case, root / case.case_id)
        lines.append(f"{case.case_id},{'LGG' if seed >= 4 else 'HGG'}")
    (root / "grades.csv").write_text("\n".join(lines) + "\n")
    return root


#: The made-up measurement in the tiny no-contrast model's JSON (tiny_models_dir).
NO_CONTRAST_DICE = {"WT": 0.87, "TC": 0.49, "ET": 0.14}


def save_tiny_model(
    path: Path, modalities: tuple[str, ...] = ("t1ce", "flair"), *, seed: int = 0, info: dict | None = None
) -> Path:
    """A tiny untrained Attention-UNet (filters 4/8/16, 32x32 input) saved with its sidecar (plus ``info``)."""
    import json

    import keras

    from neuroinsight.model import ModelConfig, build_attention_unet
    from neuroinsight.preprocessing import PreprocessConfig

    keras.utils.set_random_seed(seed)
    config = ModelConfig(input_channels=len(modalities), image_size=32, filters=(4, 8, 16), bottleneck=32)
    build_attention_unet(config).save(path)
    preprocess = PreprocessConfig(image_size=32, modalities=modalities)
    sidecar = {"model": config.to_dict(), "preprocess": preprocess.to_dict()}
    path.with_suffix(".json").write_text(json.dumps({**sidecar, **(info or {})}))
    return path


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A tiny untrained two-channel Attention-UNet saved with its sidecar."""
    return save_tiny_model(tmp_path_factory.mktemp("models") / "attention_unet.keras")


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    """A models folder like the shipped one: tiny untrained two-channel, four-modality and no-contrast models.

    The no-contrast model's JSON says it trained with modality dropout and carries a made-up
    ``without_t1ce`` measurement, so the text built from it can be checked.
    """
    folder = tmp_path_factory.mktemp("shipped")
    save_tiny_model(folder / "attention_unet.keras", seed=1)
    save_tiny_model(folder / "attention_unet_4mod.keras", io.MODALITIES, seed=2)
    measured = {"folds": 4, "patients": 12, "dice": NO_CONTRAST_DICE, "dice_sd": {"WT": 0.05, "TC": 0.2, "ET": 0.2}}
    save_tiny_model(
        folder / "attention_unet_nocontrast.keras",
        io.MODALITIES,
        seed=3,
        info={"train": {"augment": "moddrop"}, "without_t1ce": measured},
    )
    return folder


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
