"""Simulated site shifts: they change the scan, never the geometry the label describes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from neuroinsight.errors import InputError
from neuroinsight.io import MODALITIES
from neuroinsight.preprocessing import brain_mask
from neuroinsight.robustness import SHIFT_NAMES, apply_shift, evaluate_shifts

from .conftest import save_tiny_model, small_case

INTENSITY_SHIFTS = ("gamma", "bias", "noise", "thick_slices")


@pytest.fixture(scope="module")
def case():
    return small_case(seed=3)


@pytest.mark.parametrize("shift", INTENSITY_SHIFTS)
def test_intensity_shift_changes_images_not_label_or_brain(case, shift):
    shifted = apply_shift(case, shift, seed=1)
    assert shifted.label is case.label
    assert shifted.images.keys() == case.images.keys()
    brain = brain_mask(case.images)
    assert np.mean(brain_mask(shifted.images) == brain) > 0.995
    for name, volume in case.images.items():
        new = shifted.images[name]
        assert new.shape == volume.shape and np.all(np.isfinite(new))
        assert new[~brain].max(initial=0) == 0  # background stays empty, as skull-stripped input has it
        change = np.abs(new[brain] - volume[brain]).mean() / np.abs(volume[brain]).mean()
        assert change > 0.01, f"{shift} left {name} unchanged"
    again = apply_shift(case, shift, seed=1)
    assert all(np.array_equal(again.images[m], shifted.images[m]) for m in case.images)


def test_rotation_turns_label_with_images():
    case = small_case(seed=3, tumor_offset=(0.6, 0.4, 0.1))  # far off-centre, so the turn moves it
    turned = apply_shift(case, "rotation")
    before = np.array(ndimage.center_of_mass(case.label > 0))
    after = np.array(ndimage.center_of_mass(turned.label > 0))
    assert np.linalg.norm(after - before) > 2

    def lesion_centre(c):  # where the FLAIR-bright lesion is, from the images alone
        flair = c.images["flair"]
        return np.array(ndimage.center_of_mass(flair > np.percentile(flair[c.label == 0], 99.5)))

    # The lesion in the images and the label must move by the same vector.
    assert np.linalg.norm((lesion_centre(turned) - lesion_centre(case)) - (after - before)) < 0.5
    assert set(np.unique(turned.label)) <= {0, 1, 2, 4}
    assert abs(int((turned.label > 0).sum()) - int((case.label > 0).sum())) < 0.05 * (case.label > 0).sum()


def test_none_is_the_case_itself_and_unknown_names_are_listed(case):
    assert apply_shift(case, "none") is case
    with pytest.raises(InputError, match="choose from none, gamma"):
        apply_shift(case, "blur")
    assert SHIFT_NAMES[0] == "none"


def _fold_model(folder, name: str, modalities: tuple[str, ...], test: list[str], seed: int):
    """A tiny untrained model whose JSON names its test patients, like a cross-validation fold model."""
    path = save_tiny_model(folder / name, modalities, seed=seed)
    info = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps({**info, "preset": path.stem, "fold": 0, "split": {"test": test}}))
    return path


def test_shifts_score_an_ensemble_of_paired_fold_models(phantom_data_dir, tmp_path):
    four = _fold_model(tmp_path, "four.keras", MODALITIES, ["ph0"], seed=2)
    two = _fold_model(tmp_path, "two.keras", ("t1ce", "flair"), ["ph0"], seed=1)
    rows = evaluate_shifts([four], phantom_data_dir, ["none"], partners=[two], precision="float32")
    assert {r["preset"] for r in rows} == {"four & two"} and {r["case"] for r in rows} == {"ph0"}
    assert {r["model"] for r in rows} == {"four.keras + two.keras"}
    other = _fold_model(tmp_path, "other.keras", ("t1ce", "flair"), ["ph1"], seed=1)
    with pytest.raises(InputError, match="different test patients"):
        evaluate_shifts([four], phantom_data_dir, ["none"], partners=[other], precision="float32")
    with pytest.raises(InputError, match="one per model"):
        evaluate_shifts([four], phantom_data_dir, ["none"], partners=[two, other], precision="float32")
