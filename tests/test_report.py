"""The PDF report: content (pdftotext), rendering (pdftoppm), colours, determinism, edge cases."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from neuroinsight import viz
from neuroinsight.grading import grade_features, load_grade_model
from neuroinsight.inference import Segmenter
from neuroinsight.metrics import region_volumes_ml
from neuroinsight.pipeline import CaseResult, analyse_case
from neuroinsight.report import DISCLAIMER, build_pdf
from tests.conftest import REPO, small_case

requires_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
WHEN = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def grader():
    return load_grade_model(REPO / "models" / "grade_classifier.json")


@pytest.fixture(scope="module")
def result(tiny_model_path, grader) -> CaseResult:
    """A phantom whose 'prediction' is its ground truth, so the tumor is certainly there."""
    case = small_case(seed=3)
    out = analyse_case(case, Segmenter.from_path(tiny_model_path, precision="float32"), grader)
    out.segmentation.labels = case.label.copy()
    out.volumes_ml = region_volumes_ml(case.label, case.spacing_mm)
    out.hgg_probability = grader.predict_proba(grade_features(case.label, case.images, case.spacing_mm))
    return out


def test_result_says_whether_the_model_saw_the_patient(result):
    """What the history records: by name from the model's case lists, by FLAIR voxels from its fingerprints."""
    assert result.seen_in_training == "no"  # the tiny model's JSON names no patient
    case = result.case
    assert replace(result, model_info={"train_cases": [case.case_id]}).seen_in_training == "training"
    renamed = {"val_fingerprints": {"another_name": case.fingerprint}}
    assert replace(result, model_info=renamed).seen_in_training == "validation"


def _text(pdf: bytes, tmp_path) -> str:
    path = tmp_path / "r.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True).stdout


def _pages(pdf: bytes, tmp_path) -> list:
    from PIL import Image

    path = tmp_path / "r.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "60", str(path), str(tmp_path / "p")], check=True)
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(tmp_path.glob("p*.png"))]


def test_report_is_a_small_deterministic_pdf(result, grader):
    a = build_pdf(result, grade_evaluation=grader.evaluation, created=WHEN)
    b = build_pdf(result, grade_evaluation=grader.evaluation, created=WHEN)
    assert a.startswith(b"%PDF") and a == b
    assert len(a) < 2 * 1024 * 1024


@requires_poppler
def test_report_text_holds_the_facts(result, grader, tmp_path):
    text = _text(build_pdf(result, grade_evaluation=grader.evaluation, created=WHEN), tmp_path)
    assert result.case.case_id in text and "2026-11-27 12:00" in text
    for value in result.volumes_ml.values():
        assert f"{value:.2f} cm³" in text
    assert f"{result.hgg_probability:.0%}" in text and "AUC" in text
    assert DISCLAIMER in text
    assert "Dice" in text and "HD95" in text
    assert "test-time augmentation" not in " ".join(text.split())  # this result ran without it
    flat = " ".join(text.split())
    assert "nested BraTS regions" in flat and "largest tumor component" in flat  # analyse_case's defaults
    assert "core islands under 30 % of the largest one relabelled edema" in flat
    assert "overstate" not in flat  # the model never saw this phantom
    assert "skull-stripped" not in flat and result.warnings == []


@requires_poppler
def test_report_repeats_the_input_warnings(result, tmp_path):
    from dataclasses import replace

    warned = replace(result, warnings=["This scan does not look skull-stripped: test."])
    flat = " ".join(_text(build_pdf(warned, created=WHEN), tmp_path).split())
    assert "Warning: This scan does not look skull-stripped: test." in flat


@requires_poppler
def test_report_warns_when_the_model_trained_on_this_patient(result, tmp_path):
    from dataclasses import replace

    seen = replace(result, model_info={**result.model_info, "train_cases": [result.case.case_id]})
    flat = " ".join(_text(build_pdf(seen, created=WHEN), tmp_path).split())
    assert f"{result.case.case_id} was one of this model's training patients" in flat and "overstate" in flat


@requires_poppler
def test_report_names_the_argmax_when_it_was_used(result, grader, tmp_path):
    from dataclasses import replace

    from neuroinsight.inference import PostprocessConfig

    result = replace(result, segmentation=replace(result.segmentation, post=PostprocessConfig()))
    flat = " ".join(_text(build_pdf(result, created=WHEN), tmp_path).split())
    assert "most probable class" in flat and "nested BraTS regions" not in flat
    assert "largest tumor component" not in flat and "core islands" not in flat


@requires_poppler
def test_first_page_shows_the_overlay_colours(result, grader, tmp_path):
    pages = _pages(build_pdf(result, grade_evaluation=grader.evaluation, created=WHEN), tmp_path)
    assert len(pages) >= 1
    r, g, b = (pages[0].reshape(-1, 3).astype(int)[:, i] for i in range(3))
    # Overlays blend each label colour at 50 % over grey: its hue survives. A legend swatch
    # alone is ~80 pixels at 60 dpi, so each hue must cover much more than that.
    hues = {
        "NCR red": (r > g + 50) & (r > b + 40),
        "edema green": (g > r + 40) & (g > b + 20),
        "enhancing yellow": (r > b + 60) & (g > b + 60) & (abs(r - g) < 60),
    }
    for name, mask in hues.items():
        assert mask.sum() > 300, f"{name}: {mask.sum()} pixels"


@requires_poppler
def test_colour_blind_report_draws_edema_sky_blue_not_green(result, tmp_path):
    pages = _pages(build_pdf(result, created=WHEN, palette=viz.COLOUR_BLIND_PALETTE), tmp_path)
    r, g, b = (pages[0].reshape(-1, 3).astype(int)[:, i] for i in range(3))
    sky_blue = (b > r + 40) & (b > g + 10)
    brats_green = (g > r + 40) & (g > b + 20)
    assert sky_blue.sum() > 300 and brats_green.sum() < 50, (sky_blue.sum(), brats_green.sum())


@requires_poppler
def test_no_tumor_and_no_ground_truth_still_report(tiny_model_path, tmp_path):
    case = small_case(seed=4, tumor_radius_mm=0)
    case.label = None
    result = analyse_case(case, Segmenter.from_path(tiny_model_path, precision="float32"))
    result.segmentation.labels[:] = 0
    result.volumes_ml = dict.fromkeys(result.volumes_ml, 0.0)
    result.hgg_probability = None
    pdf = build_pdf(result, created=WHEN)
    text = _text(pdf, tmp_path)
    assert "No tumor was found" in text
    assert "No ground truth was provided" in text
    assert len(_pages(pdf, tmp_path)) >= 1


@requires_poppler
def test_report_with_only_t1ce_and_flair(tiny_model_path, tmp_path):
    case = small_case(seed=6)
    case.images = {m: case.images[m] for m in ("t1ce", "flair")}
    result = analyse_case(case, Segmenter.from_path(tiny_model_path, precision="float32"), tta=True)
    text = _text(build_pdf(result, created=WHEN), tmp_path)
    assert "Modalities provided: T1CE, FLAIR" in text
    assert "mirrored scan (test-time augmentation)" in " ".join(text.split())
    assert DISCLAIMER in text


@requires_poppler
def test_report_of_an_ensemble_names_both_models(tiny_models_dir, tmp_path):
    members = [
        Segmenter.from_path(tiny_models_dir / name, precision="float32")
        for name in ("attention_unet_4mod.keras", "attention_unet.keras")
    ]
    result = analyse_case(small_case(seed=6), Segmenter.ensemble(members))
    text = " ".join(_text(build_pdf(result, created=WHEN), tmp_path).split())
    assert "model attention_unet_4mod.keras + attention_unet.keras" in text
    assert (
        "Ensemble: the class probabilities of attention_unet_4mod.keras (t1, t1ce, t2, flair) and "
        "attention_unet.keras (t1ce, flair) averaged." in text
    )
