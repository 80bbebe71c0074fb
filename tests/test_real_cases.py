"""The same checks on the real BraTS cases in the data folder (skipped, with the reason, elsewhere)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from neuroinsight import io
from neuroinsight.cli import main
from neuroinsight.data import SliceDataset, stratified_split
from neuroinsight.preprocessing import SEED_PREPROCESS
from tests.conftest import DATA_DIR, REPO, requires_real_data

pytestmark = requires_real_data


def test_validate_prints_a_summary_for_every_shared_case(capsys):
    cases = io.list_cases(DATA_DIR)
    assert len(cases) >= 1
    for folder in cases:
        assert main(["validate", str(folder)]) == 0
        out = capsys.readouterr().out
        assert folder.name in out and "labels" in out and "spacing" in out


def test_real_case_geometry_and_labels():
    folder = io.list_cases(DATA_DIR)[0]
    case = io.load_case(folder)
    assert case.shape == (240, 240, 155) and case.spacing_mm == (1.0, 1.0, 1.0)
    assert set(np.unique(case.label)) <= {0, 1, 2, 4}
    source = nib.load(next(folder.glob("*_t1ce.nii.gz")))
    np.testing.assert_allclose(case.source_affine, source.affine)


def test_seed_generator_on_real_cases(tmp_path):
    folders = io.list_cases(DATA_DIR)[:2]
    data = SliceDataset(folders, SEED_PREPROCESS, batch_size=2, cache_dir=tmp_path)
    assert len(data.records) == 2 * 80  # slices 50..130 of each case
    x, y = data[0]
    assert x.shape == (2, 128, 128, 2) and y.shape == (2, 128, 128, 4)
    classes = np.concatenate([np.asarray(c.classes).ravel() for c in data._cases.values()])
    assert set(np.unique(classes)) <= {0, 1, 2, 3} and 3 in classes


def test_split_of_the_shared_cases():
    grades = io.read_grades(DATA_DIR)
    split = stratified_split(grades)
    assert sum(len(v) for v in split.values()) == len(grades)
    assert {grades[c] for c in split["test"]} == set(grades.values())


@pytest.mark.slow
def test_shipped_model_segments_a_real_case_on_its_grid(tmp_path, capsys):
    if not (REPO / "models" / "attention_unet.keras").exists():
        pytest.skip("no shipped model in models/")
    folder = io.list_cases(DATA_DIR)[0]
    out = tmp_path / "seg.nii.gz"
    assert main(["--no-progress", "segment", str(folder), "--out", str(out)]) == 0
    written, source = nib.load(out), nib.load(next(folder.glob("*_seg.nii.gz")))
    assert written.shape == source.shape and written.get_data_dtype() == np.uint8
    np.testing.assert_allclose(written.affine, source.affine)
    printed = capsys.readouterr().out
    assert "Dice WT" in printed
    assert "accuracy to expect: mean Dice ± SD in 4-fold cross-validation of its recipe (12 patients)" in printed


def test_shipped_models_recognise_their_patients_under_any_name():
    """The fingerprints in each shipped model's JSON are those of the shared cases it trained on."""
    from neuroinsight.inference import read_model_info, seen_patient_note

    infos = [read_model_info(p) for p in sorted((REPO / "models").glob("attention_unet*.keras"))]
    assert infos and all(info["train_fingerprints"] for info in infos)
    for folder in io.list_cases(DATA_DIR):
        case = io.load_case(folder)
        for info in infos:
            if folder.name in info["train_cases"]:
                assert info["train_fingerprints"][folder.name] == case.fingerprint
        case.case_id = "BraTS20_Training_001"  # as the 2020 release renamed the 2018 patients
        note = seen_patient_note(infos[0], case)
        assert f"same FLAIR voxels as {folder.name}" in note
        # ... and with the score a model of the same recipe got on it without having seen it.
        held_out = infos[0]["crossval"]["per_patient"][folder.name]
        assert f"Held out in that cross-validation, {folder.name} scored Dice WT {held_out['WT']:.2f}" in note
