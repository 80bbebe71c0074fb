"""Segmenting cases: native shape and labels, orientation, brain-free slices, TTA, post-processing."""

from __future__ import annotations

import copy
import dataclasses
import shlex

import nibabel as nib
import numpy as np
import pytest

from neuroinsight import io
from neuroinsight import preprocessing as pp
from neuroinsight.errors import InputError
from neuroinsight.inference import (
    PostprocessConfig,
    Segmenter,
    choose_model,
    choose_models,
    crossval_choices,
    crossval_rows,
    held_out_dice,
    postprocess,
    seen_patient_note,
    trained_with_modality_dropout,
)
from tests.conftest import REPO, ras_copy, save_tiny_model, small_case


@pytest.fixture(scope="module")
def segmenter(tiny_model_path) -> Segmenter:
    return Segmenter.from_path(tiny_model_path, precision="float32")


def test_segmentation_is_on_the_source_grid(segmenter, tmp_path):
    case = small_case()
    seg = segmenter.segment(case)
    assert seg.labels.shape == case.shape and seg.labels.dtype == np.uint8
    assert set(np.unique(seg.labels)) <= {0, 1, 2, 4}
    assert not seg.labels[~seg.brain].any()  # nothing outside the brain is tumor
    np.testing.assert_allclose(seg.probabilities.astype(np.float32).sum(-1), 1.0, atol=1e-2)
    out = io.save_label_map(seg.labels, case, tmp_path / "seg.nii.gz")
    saved = nib.load(out)
    np.testing.assert_allclose(saved.affine, case.source_affine)
    assert saved.shape == case.shape


def test_slices_without_brain_are_background(segmenter):
    case = small_case()
    for volume in case.images.values():
        volume[:, :, :6] = 0
    seg = segmenter.segment(case)
    assert (seg.labels[:, :, :6] == 0).all()
    assert (seg.probabilities[:, :, :6, 0] == 1).all()


def test_ras_copy_gives_the_same_result_voxel_for_voxel(segmenter, phantom_dir, tmp_path):
    lps = io.load_case(phantom_dir)
    ras = io.load_case(ras_copy(phantom_dir, tmp_path / "ras"))
    seg_lps, seg_ras = segmenter.segment(lps), segmenter.segment(ras)
    np.testing.assert_array_equal(seg_lps.labels, seg_ras.labels)
    # Written back, each matches its own input: the LPS file equals the RAS file flipped.
    a = np.asarray(nib.load(io.save_label_map(seg_lps.labels, lps, tmp_path / "a.nii.gz")).dataobj)
    b = np.asarray(nib.load(io.save_label_map(seg_ras.labels, ras, tmp_path / "b.nii.gz")).dataobj)
    np.testing.assert_array_equal(a, b[::-1, ::-1, :])


def test_tta_gives_uncertainty_and_attention_maps(segmenter):
    case = small_case()
    seg = segmenter.segment(case, tta=True)
    assert seg.uncertainty is not None and seg.uncertainty.shape == case.shape
    assert float(seg.uncertainty.min()) >= 0 and float(seg.uncertainty.max()) <= 1
    alpha = seg.attention_slice(1, case.shape[2] // 2)
    assert alpha.shape == case.shape[:2] and alpha.min() >= 0 and alpha.max() <= 1


def test_a_coronal_model_segments_on_the_canonical_grid(tmp_path):
    """Its result equals an axial run of the same network on the case with y and z swapped, swapped back."""
    coronal = pp.PreprocessConfig(image_size=32, plane="coronal")
    path = save_tiny_model(tmp_path / "coronal.keras", info={"preprocess": coronal.to_dict()})
    segmenter = Segmenter.from_path(path, precision="float32")
    assert segmenter.preprocess.plane == "coronal"
    case = small_case(seed=4)
    swapped = dataclasses.replace(
        case,
        images={name: np.ascontiguousarray(volume.transpose(0, 2, 1)) for name, volume in case.images.items()},
        label=None,
    )
    axial = copy.copy(segmenter)
    axial.preprocess = dataclasses.replace(coronal, plane="axial")
    seg = segmenter.segment(case, tta=True)
    reference = axial.segment(swapped, tta=True)
    assert seg.labels.shape == seg.brain.shape == seg.uncertainty.shape == case.shape
    np.testing.assert_array_equal(seg.brain, reference.brain.transpose(0, 2, 1))
    np.testing.assert_allclose(seg.probabilities, reference.probabilities.transpose(0, 2, 1, 3), atol=1e-4)
    assert (seg.labels != reference.labels.transpose(0, 2, 1)).mean() < 1e-3  # ties at float rounding only
    # Its gates sit on coronal slices; the viewer's axial slice shows none rather than wrong ones.
    assert not seg.attention_slice(1, case.shape[2] // 2).any()


def test_postprocessing_rules():
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:8, 2:8, 2:8] = 2
    labels[4:6, 4:6, 4:6] = 4  # 8 voxels of ET
    labels[15, 15, 15] = 2  # a stray voxel
    cleaned = postprocess(labels, PostprocessConfig(min_component_ml=0.005), voxel_ml=0.001)
    assert cleaned[15, 15, 15] == 0 and (cleaned[2:8, 2:8, 2:8] > 0).all()
    largest = postprocess(labels, PostprocessConfig(largest_component_only=True), voxel_ml=0.001)
    assert largest[15, 15, 15] == 0
    relabelled = postprocess(labels, PostprocessConfig(min_enhancing_ml=0.01), voxel_ml=0.001)
    assert not (relabelled == 4).any() and (relabelled[4:6, 4:6, 4:6] == 1).all()


def test_small_core_islands_become_edema_and_the_whole_tumor_stays():
    labels = np.zeros((24, 24, 24), np.uint8)
    labels[2:20, 2:20, 2:20] = 2
    labels[4:10, 4:10, 4:10] = 4  # the main core: 216 voxels
    labels[5:8, 5:8, 5:8] = 1
    labels[14:17, 14:17, 14:17] = 1  # a separate core island of 27 voxels (1/8 of the main one)
    labels[10, 10, 10] = 4  # touches the main core at a corner only: 26-connected, part of it
    for fraction, island_kept in ((0.1, True), (0.2, False), (1.0, False)):
        out = postprocess(labels, PostprocessConfig(core_island_fraction=fraction), voxel_ml=0.001)
        np.testing.assert_array_equal(out > 0, labels > 0)  # the whole tumor is never changed
        assert (out[14:17, 14:17, 14:17] == (1 if island_kept else 2)).all()
        assert out[10, 10, 10] == 4 and (out[4:10, 4:10, 4:10] == labels[4:10, 4:10, 4:10]).all()
    assert (postprocess(labels, PostprocessConfig(), voxel_ml=0.001) == labels).all()  # off by default


@pytest.mark.parametrize(
    "settings",
    [
        {"decoding": "softmax"},
        {"region_thresholds": (0.5, 1.0, 0.5)},
        {"region_thresholds": (0.5, 0.5)},
        {"core_island_fraction": 1.5},
    ],
)
def test_postprocess_settings_are_checked(settings):
    with pytest.raises(InputError):
        PostprocessConfig(**settings)


def test_segment_applies_the_region_thresholds(segmenter):
    case = small_case(seed=5)
    plain = segmenter.segment(case)
    # The whole-tumor threshold at the median tumor probability in the brain: about half of it
    # is then tumor, whatever the untrained network outputs, so the check cannot pass vacuously.
    thresholds = (float(np.median(1.0 - plain.probabilities[..., 0][plain.brain])), 0.3, 0.6)
    labels = segmenter.segment(case, post=PostprocessConfig(decoding="regions", region_thresholds=thresholds)).labels
    expected = pp.decode_labels(plain.probabilities, "regions", thresholds) * plain.brain
    # Voxels right at the threshold may round either way (the slices are resized one by one there,
    # all at once here); the halves would differ on about half the brain.
    assert np.count_nonzero(labels != expected) < 1e-3 * np.count_nonzero(plain.brain)
    assert 0.3 < np.count_nonzero(labels) / np.count_nonzero(plain.brain) < 0.7


def test_model_choice_follows_modalities(tmp_path):
    for name in ("attention_unet.keras", "attention_unet_4mod.keras"):
        (tmp_path / name).write_bytes(b"")
    assert choose_model(tmp_path, ("t1", "t1ce", "t2", "flair")).name == "attention_unet_4mod.keras"
    assert choose_model(tmp_path, ("t1ce", "flair")).name == "attention_unet.keras"
    assert choose_model(tmp_path, ("t1", "t1ce", "flair")).name == "attention_unet.keras"
    with pytest.raises(InputError):
        choose_model(tmp_path, ("t1", "t2"))


def test_only_a_model_trained_with_modality_dropout_runs_without_a_modality(tiny_models_dir):
    segmenter = Segmenter.from_path(tiny_models_dir / "attention_unet_4mod.keras", precision="float32")
    case = small_case(seed=2)
    no_t2 = dataclasses.replace(case, images={m: v for m, v in case.images.items() if m != "t2"})
    assert not segmenter.blank_missing  # its JSON names no training augmentation
    with pytest.raises(InputError, match="missing T2"):
        segmenter.segment(no_t2)
    segmenter.info["train"] = {"augment": "moddrop"}
    assert trained_with_modality_dropout(segmenter.info)
    assert not trained_with_modality_dropout({"train": {"augment": "robust"}})
    blanked = Segmenter(segmenter.model, segmenter.preprocess, name="moddrop", info=segmenter.info)
    labels = blanked.segment(no_t2, attention=False).labels
    assert labels.shape == case.shape
    # The blank channel is the brain's z-scored mean: the same as a T2 that is 0 everywhere.
    zero_t2 = dataclasses.replace(case, images={**no_t2.images, "t2": np.zeros_like(case.images["t2"])})
    np.testing.assert_array_equal(labels, segmenter.segment(zero_t2, attention=False).labels)


@pytest.mark.parametrize(
    ("name", "channels", "chosen_for"),
    [
        ("attention_unet.keras", 2, ("t1ce", "flair")),
        ("attention_unet_4mod.keras", 4, io.MODALITIES),
        ("attention_unet_nocontrast.keras", 4, io.NO_CONTRAST_MODALITIES),
    ],
)
def test_shipped_models_load_in_safe_mode(name, channels, chosen_for):
    from neuroinsight.inference import read_model_info
    from neuroinsight.model import load_model

    path = REPO / "models" / name
    model = load_model(path)  # safe_mode=True: no arbitrary code runs on load
    assert model.input_shape == (None, 128, 128, channels)
    info = read_model_info(path)
    assert len(info["preprocess"]["modalities"]) == channels
    assert choose_model(REPO / "models", chosen_for) == path
    if name == "attention_unet_nocontrast.keras":  # it can run without T1ce, and its accuracy there is recorded
        assert trained_with_modality_dropout(info)
        assert info["without_t1ce"]["patients"] == 12 and info["without_t1ce"]["missing"] == "t1ce"


def test_shipped_models_keep_each_cross_validation_patients_dice():
    """The per-patient Dice in the shipped JSONs are those of the CSV and variant their command names."""
    from neuroinsight.crossval import read_rows, variant_summary

    choices = crossval_choices(REPO / "models")
    assert list(choices) == [
        "attention_unet_4mod.keras",
        "ensemble led by attention_unet_4mod.keras",
        "attention_unet.keras",
    ]
    for info in choices.values():
        cv = info["crossval"]
        csv = REPO / shlex.split(cv["command"])[4]  # python -m neuroinsight crossval-table CSV --variant ...
        recomputed = variant_summary(read_rows([csv]), (cv["preset"], cv["tta"], cv["post"]))
        assert recomputed["per_patient"] == cv["per_patient"] and len(cv["per_patient"]) == cv["patients"] == 12
        rows = crossval_rows(info)
        assert len(rows) == 36 and all(0 <= r["dice"] <= 1 for r in rows)


def test_a_patient_the_model_trained_on_comes_with_its_held_out_dice():
    case = small_case(seed=1)
    dice = {"WT": 0.81, "TC": 0.42, "ET": 0.3}
    info = {"train_fingerprints": {"Brats18_A_1": case.fingerprint}, "crossval": {"per_patient": {"Brats18_A_1": dice}}}
    assert held_out_dice(info, case) == ("Brats18_A_1", dice)  # found by its voxels under another name
    assert seen_patient_note(info, case).endswith(
        "overstate the accuracy to expect on a new patient; the cross-validated accuracy in the model card is the "
        "fair estimate. Held out in that cross-validation, Brats18_A_1 scored Dice WT 0.81, TC 0.42, ET 0.30."
    )
    never_seen = {**info, "train_fingerprints": {"Brats18_B_1": "0" * 64}}
    assert held_out_dice(never_seen, case) == ("", {}) and seen_patient_note(never_seen, case) == ""
    older = {**info, "crossval": {"dice": {"WT": 0.8}}}  # recorded before per-patient numbers were kept
    assert held_out_dice(older, case) == ("", {}) and seen_patient_note(older, case).endswith("fair estimate.")


@pytest.fixture(scope="module")
def shipped_pair(tiny_models_dir) -> tuple[Segmenter, Segmenter]:
    """The tiny four-modality and two-channel models, in the order the ensemble uses them."""
    return tuple(
        Segmenter.from_path(tiny_models_dir / name, precision="float32")
        for name in ("attention_unet_4mod.keras", "attention_unet.keras")
    )


def test_ensemble_averages_its_members_probabilities(shipped_pair):
    four, two = shipped_pair
    ensemble = Segmenter.ensemble([four, two])
    case = small_case(seed=6)
    alone = [s.segment(case, tta=True) for s in (four, two)]
    both = ensemble.segment(case, tta=True)
    # The members disagree (different random weights), so the mean is a real check.
    assert np.abs(alone[0].probabilities - alone[1].probabilities).max() > 0.01
    np.testing.assert_allclose(both.probabilities, (alone[0].probabilities + alone[1].probabilities) / 2, atol=1e-5)
    assert both.model_name == "attention_unet_4mod.keras + attention_unet.keras"
    assert both.modalities == io.MODALITIES
    np.testing.assert_array_equal(both.attention[1], alone[0].attention[1])  # the first member's gates
    assert [m["modalities"] for m in ensemble.info["ensemble"]] == [list(io.MODALITIES), ["t1ce", "flair"]]
    assert four.name == "attention_unet_4mod.keras" and len(four.members) == 1  # members are left as they were
    assert Segmenter.ensemble([two]) is two


def test_ensemble_shows_its_own_accuracy_and_every_members_patients(shipped_pair):
    four, two = shipped_pair
    lead = copy.copy(four)
    lead.info = {**four.info, "crossval": {"dice": {}}, "train_cases": ["a"]}
    member = copy.copy(two)
    member.info = {**two.info, "train_cases": ["b"], "val_cases": ["c"]}
    info = Segmenter.ensemble([lead, member]).info
    assert "crossval" not in info  # the lead's own recipe numbers do not describe the ensemble
    assert info["train_cases"] == ["a", "b"] and info["val_cases"] == ["c"]
    lead.info["ensemble_crossval"] = {"dice": {"WT": 0.9}}
    assert Segmenter.ensemble([lead, member]).info["crossval"] == {"dice": {"WT": 0.9}}


def test_ensemble_refuses_members_it_cannot_feed(shipped_pair, tiny_model_path, tmp_path):
    four, two = shipped_pair
    with pytest.raises(InputError, match="cannot join"):
        Segmenter.ensemble([two, four])  # the lead prepares only T1ce and FLAIR
    other = Segmenter.from_path(tiny_model_path, precision="float32")
    other.preprocess = pp.PreprocessConfig(image_size=32, crop_to_brain=False)
    with pytest.raises(InputError, match="cannot join"):
        Segmenter.ensemble([four, other])


def test_ensemble_choice_needs_all_four_modalities(tiny_models_dir):
    def names(modalities, **kwargs) -> list[str]:
        return [p.name for p in choose_models(tiny_models_dir, modalities, **kwargs)]

    assert names(io.MODALITIES, ensemble=True) == ["attention_unet_4mod.keras", "attention_unet.keras"]
    assert names(("t1ce", "flair"), ensemble=True) == ["attention_unet.keras"]
    assert names(io.MODALITIES) == ["attention_unet_4mod.keras"]


def test_decoding_stages_walk_from_the_argmax_to_the_shipped_labels():
    """The Learn page's steps: each is the previous one with one rule applied, ending in the segmentation."""
    from neuroinsight import phantom
    from neuroinsight.inference import DEFAULT_POSTPROCESS, decoding_stages

    case = phantom.make_template_case(seed=phantom.DEMO_SEED, case_id="demo_case")
    segmenter = Segmenter.from_path(REPO / "models" / "attention_unet_4mod.keras")
    seg = segmenter.segment(case, tta=True, attention=False, post=DEFAULT_POSTPROCESS)
    stages = decoding_stages(seg, case.voxel_volume_ml)
    assert list(stages) == [
        "most probable class",
        "nested BraTS regions",
        "largest tumor component",
        "small core islands made edema",
    ]
    np.testing.assert_array_equal(stages["small core islands made edema"], seg.labels)
    argmax = segmenter.segment(case, tta=True, attention=False, post=PostprocessConfig())
    np.testing.assert_array_equal(stages["most probable class"], argmax.labels)
    regions, largest, cleaned = (stages[k] for k in list(stages)[1:])
    assert (largest > 0).sum() <= (regions > 0).sum() and ((largest > 0) <= (regions > 0)).all()
    np.testing.assert_array_equal(cleaned > 0, largest > 0)  # core islands change no tumor voxel
    assert ((cleaned == 1) | (cleaned == 4)).sum() < ((largest == 1) | (largest == 4)).sum()  # on this case, some
