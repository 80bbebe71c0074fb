"""Slice rendering: what the viewer draws and the legend that explains it."""

from __future__ import annotations

import numpy as np
import pytest

from neuroinsight import viz
from tests.conftest import small_case


def _swatches(layer: str, palette: viz.Palette) -> dict[str, str]:
    """Legend name -> swatch colour, as the viewer's legend figure shows them."""
    figure = viz.legend_figure(viz.legend_entries(layer, palette))
    return {trace.name: trace.marker.color for trace in figure.data}


@pytest.mark.parametrize("palette", viz.PALETTES.values(), ids=viz.PALETTES)
def test_label_legend_shows_the_colours_drawn_on_the_slice(palette):
    labels = np.array([[1], [2], [4]])
    drawn = viz.overlay_labels(np.zeros((3, 1), np.uint8), labels, opacity=1.0, palette=palette)[:, 0]
    swatches = _swatches("labels", palette)
    assert list(swatches) == list(viz.LABEL_NAMES.values())
    for (r, g, b), name in zip(drawn, viz.LABEL_NAMES.values(), strict=True):
        assert swatches[name] == f"#{r:02x}{g:02x}{b:02x}", name
    # Region charts (per-slice Dice, 3-D view) use the same colours: ET as ET, TC as NCR, WT as edema.
    for region, label in (("ET", 4), ("TC", 1), ("WT", 2)):
        assert palette.regions[region] == swatches[viz.LABEL_NAMES[label]], region


@pytest.mark.parametrize("palette", viz.PALETTES.values(), ids=viz.PALETTES)
def test_error_legend_shows_the_colours_drawn_on_the_slice(palette):
    pred = np.array([[True], [True], [False]])
    ref = np.array([[True], [False], [True]])
    drawn = viz.error_map(np.zeros((3, 1), np.uint8), pred, ref, opacity=1.0, palette=palette)[:, 0]
    swatches = _swatches("error map (WT)", palette)
    for (r, g, b), name in zip(drawn, ("true positive", "false positive", "false negative"), strict=True):
        assert swatches[name] == f"#{r:02x}{g:02x}{b:02x}", name


def test_difference_map_colours_where_two_analyses_disagree():
    mine = np.array([[2], [0], [1], [4], [0]])
    theirs = np.array([[0], [2], [4], [4], [0]])
    drawn = viz.difference_map(np.zeros((5, 1), np.uint8), mine, theirs, opacity=1.0)[:, 0]
    for (r, g, b), name in zip(drawn[:3], viz.DIFFERENCE_COLORS, strict=True):
        assert viz.hex_color((r, g, b)) == viz.hex_color(viz.DIFFERENCE_COLORS[name]), name
    assert not drawn[3:].any()  # agreement (same label, or both background) stays grey
    for palette in viz.PALETTES.values():
        shown_beside = set(palette.labels.values()) | set(palette.errors.values())
        assert not shown_beside & set(viz.DIFFERENCE_COLORS.values()), palette.name


# Machado, Oliveira & Fernandes (2009), severity 1: linear-RGB matrices simulating dichromacy.
DICHROMACY = {
    "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]],
    "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]],
    "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]],
}


def _closest_pair_seen_as(colours: list[viz.RGB], vision: str | None) -> float:
    """The smallest CIEDE2000 difference between two of ``colours``, as seen with ``vision`` (None: typical)."""
    from itertools import combinations

    from skimage.color import deltaE_ciede2000, rgb2lab

    srgb = np.array(colours, float) / 255
    if vision is not None:
        linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
        linear = np.clip(linear @ np.array(DICHROMACY[vision]).T, 0, 1)
        srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    lab = rgb2lab(srgb[None])[0]
    return min(float(deltaE_ciede2000(lab[i], lab[j])) for i, j in combinations(range(len(colours)), 2))


@pytest.mark.parametrize("vision", [None, *DICHROMACY])
def test_colour_blind_palette_keeps_labels_and_errors_apart(vision):
    for colours in (viz.COLOUR_BLIND_PALETTE.labels, viz.COLOUR_BLIND_PALETTE.errors):
        assert _closest_pair_seen_as(list(colours.values()), vision) > 20, vision
    if vision == "deuteranopia":  # why the switch exists: the BraTS core and edema nearly merge
        assert _closest_pair_seen_as(list(viz.BRATS_PALETTE.labels.values()), vision) < 15


def test_heat_map_layers_get_a_colour_scale_instead_of_swatches():
    assert viz.legend_entries("uncertainty") == []
    assert viz.legend_entries("attention gate 2") == []
    assert viz.HEAT_SCALE.startswith("Colour scale")


def test_heat_colours_brighten_steadily_so_the_scale_survives_colour_blindness():
    # JET fails this: its brightness peaks at cyan-yellow and falls towards red, so 0.7 and 1.0 look
    # alike in grey and to red-green colour-blind readers.
    rgb = viz.heat_scale_bar(width=64, height=1)[0].astype(float)
    luminance = rgb @ np.array([0.2126, 0.7152, 0.0722])
    assert np.all(np.diff(luminance) > 0)
    assert luminance[-1] - luminance[0] > 150
    drawn = viz.heat_overlay(np.zeros((1, 64), np.uint8), np.linspace(0, 1, 64)[None], opacity=1.0)
    assert np.array_equal(drawn[0], rgb)  # the layers are drawn in the scale shown


def test_layers_a_case_cannot_show_are_not_offered():
    everything = viz.available_layers(has_truth=True, has_uncertainty=True)
    assert everything == list(viz.LAYERS)
    bare = viz.available_layers(has_truth=False, has_uncertainty=False)
    assert "labels" in bare and "attention gate 3" in bare
    assert not {"ground truth beside", "error map (WT)", "uncertainty"} & set(bare)
    assert [viz.LAYERS[name].gate for name in bare if viz.LAYERS[name].gate] == [1, 2, 3]


def _gray_and(result, labels, z: int):
    """The viewer's FLAIR background of axial slice ``z`` and ``labels`` on it."""
    low, high = result.display_window("flair")
    gray = viz.window_to_uint8(viz.display_slice(result.case.images["flair"], "axial", z), low, high)
    return gray, viz.display_slice(labels, "axial", z)


def test_every_layer_draws_the_slice_and_unshowable_layers_fall_back_to_labels(tiny_model_path):
    import dataclasses

    from neuroinsight.inference import Segmenter
    from neuroinsight.pipeline import analyse_case

    case = small_case(seed=5)
    result = analyse_case(case, Segmenter.from_path(tiny_model_path, precision="float32"), tta=True)
    z = case.shape[2] // 2
    shape = viz.display_slice(case.label, "axial", z).shape
    for name in viz.available_layers(has_truth=True, has_uncertainty=True):
        images = viz.render_layers(result, "flair", "axial", z, name)
        assert len(images) == (2 if name == "ground truth beside" else 1), name
        assert all(rgb.shape == (*shape, 3) and rgb.dtype == np.uint8 for _, rgb in images), name
    # Beside: truth first, prediction second (the untrained model's labels differ from the truth).
    (truth_caption, truth_rgb), (pred_caption, pred_rgb) = viz.render_layers(
        result, "flair", "axial", z, "ground truth beside"
    )
    assert truth_caption.startswith("ground truth") and pred_caption.startswith("prediction")
    assert np.array_equal(truth_rgb, viz.overlay_labels(*_gray_and(result, case.label, z)))
    assert np.array_equal(pred_rgb, viz.overlay_labels(*_gray_and(result, result.segmentation.labels, z)))
    # Attention gates are per axial slice: other planes get a plain slice and say so.
    caption, _ = viz.render_layers(result, "flair", "coronal", 10, "attention gate 1")[0]
    assert "choose the axial plane" in caption

    # A case without truth or uncertainty asked for those layers gets the prediction instead.
    bare = dataclasses.replace(result, case=dataclasses.replace(case, label=None))
    bare.segmentation.uncertainty = None
    for name in ("ground truth beside", "error map (WT)", "uncertainty"):
        (caption, rgb), *rest = viz.render_layers(bare, "flair", "axial", z, name)
        assert caption.startswith("prediction") and not rest, name
        assert np.array_equal(rgb, viz.render_layers(bare, "flair", "axial", z, "labels")[0][1])

    # A narrower brightness window (percentiles of the brain voxels) pushes more of the slice to black and white.
    wide = viz.render_layers(result, "flair", "axial", z, "labels", visible=())[0][1]
    narrow = viz.render_layers(result, "flair", "axial", z, "labels", visible=(), window=(40.0, 60.0))[0][1]
    assert (narrow == 255).sum() > (wide == 255).sum() and (narrow == 0).sum() > (wide == 0).sum()


def test_intensity_window_is_percentiles_of_the_brain_voxels():
    volume = np.zeros((40, 40, 40))
    volume[10:30, 10:30, 10:30] = np.random.default_rng(0).uniform(100, 200, (20, 20, 20))
    low, high = viz.intensity_window(volume, (0.0, 100.0))
    assert 100 <= low < 101 and 199 < high <= 200  # the zero background does not count
    inner = viz.intensity_window(volume, (25.0, 75.0))
    assert low < inner[0] < 150 < inner[1] < high
    assert viz.intensity_window(volume) == viz.intensity_window(volume, viz.DEFAULT_WINDOW_PERCENTILES)


def test_probability_layers_show_nested_region_probabilities_outlined_by_the_labels(tiny_model_path):
    from neuroinsight.inference import TUNED_THRESHOLDS, Segmenter
    from neuroinsight.pipeline import analyse_case

    case = small_case(seed=5)
    result = analyse_case(case, Segmenter.from_path(tiny_model_path, precision="float32"))
    seg = result.segmentation
    p = seg.region_probabilities
    assert set(p) == {"WT", "TC", "ET"} and all(v.shape == case.shape and v.dtype == np.uint8 for v in p.values())
    assert (p["ET"] <= p["TC"]).all() and (p["TC"] <= p["WT"]).all()  # the regions are nested
    assert not any(v[~seg.brain].any() for v in p.values())
    # Region decoding called tumor only where P(WT) passed its threshold (one step of rounding aside).
    tumor = seg.labels > 0
    assert tumor.any() and (p["WT"][tumor] >= TUNED_THRESHOLDS[0] * 255 - 1).all()
    z = viz.largest_tumor_slice(seg.labels)
    (caption, rgb), *rest = viz.render_layers(result, "flair", "axial", z, "probability WT")
    assert caption.startswith("probability WT") and not rest
    edge = viz.outline(viz.display_slice(seg.labels, "axial", z) > 0)
    assert edge.any() and (rgb[edge] == 255).all()
    square = np.zeros((5, 5), bool)
    square[1:4, 1:4] = True
    assert viz.outline(square).sum() == 8 and not viz.outline(square)[2, 2]


def test_label_panels_are_framed_and_show_their_class_inside():
    """The teaching panels are binary masks; the grey frame keeps a mostly white one (background) apart
    from the white page, and inside the frame each panel is exactly its class."""
    case = small_case()
    z = viz.largest_tumor_slice(case.label)
    cut = viz.display_slice(case.label, "axial", z)
    panels = dict(viz.label_breakdown(case.label, z))
    for name, expected in (("background (0)", cut == 0), ("WT = 1+2+4", cut > 0), ("ET = 4", cut == 4)):
        rgb = panels[name]
        assert rgb.shape == (*cut.shape, 3)
        frame = np.concatenate([rgb[:2].reshape(-1, 3), rgb[-2:].reshape(-1, 3), rgb[:, :2].reshape(-1, 3)])
        assert (frame == 128).all(), name
        np.testing.assert_array_equal(rgb[2:-2, 2:-2, 0] == 255, expected[2:-2, 2:-2], err_msg=name)


def test_app_icon_is_drawn_in_the_overlay_colours_on_a_transparent_background():
    icon = viz.app_icon(64)
    assert icon.shape == (64, 64, 4) and icon.dtype == np.uint8
    assert icon[0, 0, 3] == 0 and icon[32, 20, 3] == 255  # a corner outside the brain, a point inside
    colours = {tuple(c) for c in icon[icon[..., 3] > 0, :3]}
    blended = viz.overlay_labels(np.full((1, 1), 150, np.uint8), np.ones((1, 1)), opacity=0.9)[0, 0]
    assert tuple(blended) in colours  # the necrotic core's red over grey brain
    assert len(colours) == 4  # grey brain, edema, enhancing rim, necrotic core


def test_panel_png_names_are_safe_file_names():
    name = viz.png_name("Brats18_2013_11_1", "attention_unet.keras · flip TTA · prediction · FLAIR axial 87")
    assert name == "Brats18_2013_11_1_attention_unet.keras_flip_TTA_prediction_FLAIR_axial_87.png"
    assert viz.png_name("c", "probability WT · T1CE coronal 3 · white: predicted WT outline").isascii()
