"""A scan without contrast agent (T1, T2, FLAIR; no T1ce): accepted, segmented by the no-contrast
model with a blank T1ce channel, and reported as a whole-tumor outline only."""

from __future__ import annotations

import shutil
import subprocess

import nibabel as nib
import numpy as np
import pytest

from neuroinsight import io
from neuroinsight.cli import main
from neuroinsight.errors import InputError
from neuroinsight.grading import load_grade_model
from neuroinsight.inference import NO_CONTRAST_MODEL, Segmenter, choose_model, choose_models
from neuroinsight.pipeline import analyse_case
from neuroinsight.report import build_pdf
from tests.conftest import NO_CONTRAST_DICE, REPO, small_case

NO_CONTRAST = ("t1", "t2", "flair")


def _without_t1ce(seed: int = 4) -> io.Case:
    case = small_case(seed=seed)
    case.images = {m: case.images[m] for m in NO_CONTRAST}
    return case


@pytest.mark.parametrize(
    ("present", "missing"),
    [
        (("t1", "t1ce", "t2", "flair"), []),
        (("t1ce", "flair"), []),
        (("t1", "t2", "flair"), []),
        (("t1", "flair"), ["t1ce"]),
        (("t2", "flair"), ["t1ce"]),
        (("t1", "t1ce", "t2"), ["flair"]),
        (("t1", "t2"), ["t1ce", "flair"]),
    ],
)
def test_which_modality_sets_can_be_segmented(present, missing):
    assert io.missing_modalities(present) == missing


def test_a_folder_without_t1ce_loads_and_an_incomplete_one_says_what_to_add(tmp_path):
    folder = io.save_case(small_case(seed=4), tmp_path / "case")
    next(folder.glob("*_t1ce.nii.gz")).unlink()
    case = io.load_case(folder)
    assert case.modalities == NO_CONTRAST
    next(folder.glob("*_t2.nii.gz")).unlink()
    with pytest.raises(InputError, match=r"Missing T1CE: .*Without contrast, T1 \+ T2 \+ FLAIR"):
        io.load_case(folder)


def test_a_misaligned_file_is_named_against_flair_without_t1ce(tmp_path):
    folder = io.save_case(_without_t1ce(), tmp_path / "case")
    t2 = next(folder.glob("*_t2.nii.gz"))
    nib.save(nib.Nifti1Image(np.ones((48, 48, 30), np.float32), np.eye(4)), t2)
    with pytest.raises(InputError, match=r"_t2\.nii\.gz: shape \(48, 48, 30\) differs from FLAIR's"):
        io.load_case(folder)


def test_the_no_contrast_model_runs_only_when_t1ce_is_missing(tiny_models_dir):
    name = NO_CONTRAST_MODEL[0]
    assert choose_model(tiny_models_dir, NO_CONTRAST).name == name
    assert choose_model(tiny_models_dir, io.MODALITIES).name == "attention_unet_4mod.keras"
    assert choose_model(tiny_models_dir, ("t1ce", "flair")).name == "attention_unet.keras"
    assert name not in [p.name for p in choose_models(tiny_models_dir, io.MODALITIES, ensemble=True)]
    assert [p.name for p in choose_models(tiny_models_dir, NO_CONTRAST, ensemble=True)] == [name]
    with pytest.raises(InputError, match="T1, T2 and FLAIR"):
        choose_model(tiny_models_dir, ("t1", "flair"))


@pytest.fixture(scope="module")
def no_contrast_result(tiny_models_dir):
    segmenter = Segmenter.from_path(tiny_models_dir / NO_CONTRAST_MODEL[0], precision="float32")
    grader = load_grade_model(REPO / "models" / "grade_classifier.json")
    result = analyse_case(_without_t1ce(), segmenter, grader)
    # The untrained tiny model may find no tumor; the grade must be withheld because of T1ce,
    # not because the volume is empty, so a tumor is put in.
    result.segmentation.labels = small_case(seed=4).label.copy()
    result.volumes_ml = {**result.volumes_ml, "WT": 10.0}
    return result


def test_without_t1ce_only_the_whole_tumor_is_reported_as_reliable(no_contrast_result):
    result = no_contrast_result
    seg = result.segmentation
    assert seg.blanked == ("t1ce",) and seg.without_contrast
    assert seg.modalities == NO_CONTRAST
    assert result.hgg_probability is None
    assert [result.is_reliable(r) for r in result.volumes_ml] == [r == "WT" for r in result.volumes_ml]
    warning = result.warnings[0]
    assert warning.startswith("No T1ce")
    cells = ", ".join(f"{r} {NO_CONTRAST_DICE[r]:.2f}" for r in ("WT", "TC", "ET"))
    assert "12 patients) without T1ce" in warning
    assert all(cell in warning for cell in cells.split(", "))


def test_a_full_case_gets_no_contrast_warning(tiny_models_dir):
    segmenter = Segmenter.from_path(tiny_models_dir / "attention_unet_4mod.keras", precision="float32")
    result = analyse_case(small_case(seed=4), segmenter)
    assert result.segmentation.blanked == () and not result.warnings
    assert all(result.is_reliable(r) for r in result.volumes_ml)


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_report_without_t1ce_says_what_is_unreliable(no_contrast_result, tmp_path):
    path = tmp_path / "r.pdf"
    path.write_bytes(build_pdf(no_contrast_result))
    text = " ".join(subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True).stdout.split())
    assert "Modalities provided: T1, T2, FLAIR; the model used T1, T2, FLAIR (attention_unet_nocontrast" in text
    assert "Warning: No T1ce" in text
    assert "Enhancing tumor (ET) (unreliable without T1ce)" in text
    assert "Whole tumor (WT = NCR + ED + ET)" in text
    assert "Whole tumor (WT = NCR + ED + ET) (unreliable" not in text
    assert "Grade: not estimated (it needs T1ce)" in text
    assert "T2 axial" in text and "T1CE" not in text
    assert "(t1ce missing: given as a blank channel)" in text


def test_cli_segments_a_folder_without_t1ce(tiny_models_dir, tmp_path, capsys):
    folder = io.save_case(_without_t1ce(), tmp_path / "case")
    assert main(["validate", str(folder)]) == 0
    assert "no T1ce (no contrast): segmenting gives the whole tumor only" in capsys.readouterr().out
    out = tmp_path / "seg.nii.gz"
    args = ["--no-progress", "segment", str(folder), "--out", str(out), "--models-dir", str(tiny_models_dir)]
    assert main([*args, "--precision", "float32"]) == 0
    captured = capsys.readouterr()
    assert f"model {NO_CONTRAST_MODEL[0]} (t1+t2+flair)" in captured.out
    assert "(unreliable without T1ce)" in captured.out
    assert "warning: No T1ce" in captured.err
    assert out.exists()
