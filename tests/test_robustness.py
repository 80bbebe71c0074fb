"""Simulated site shifts: they change the scan, never the geometry the label describes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from neuroinsight.errors import InputError
from neuroinsight.preprocessing import brain_mask
from neuroinsight.robustness import SHIFT_NAMES, apply_shift

from .conftest import small_case

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
