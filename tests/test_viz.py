"""Slice rendering: what the viewer draws and the legend that explains it."""

from __future__ import annotations

import numpy as np

from neuroinsight import viz


def _swatches(layer: str) -> dict[str, str]:
    """Legend name -> swatch colour, as the viewer's legend figure shows them."""
    figure = viz.legend_figure(viz.legend_entries(layer))
    return {trace.name: trace.marker.color for trace in figure.data}


def test_label_legend_shows_the_colours_drawn_on_the_slice():
    labels = np.array([[1], [2], [4]])
    drawn = viz.overlay_labels(np.zeros((3, 1), np.uint8), labels, opacity=1.0)[:, 0]
    swatches = _swatches("labels")
    assert len(swatches) == 3
    for (r, g, b), (name, _) in zip(drawn, viz.LABEL_COLORS.values(), strict=True):
        assert swatches[name] == f"#{r:02x}{g:02x}{b:02x}", name
    # Region charts (per-slice Dice, 3-D view) use the same colours: ET as ET, TC as NCR, WT as edema.
    for region, label in (("ET", 4), ("TC", 1), ("WT", 2)):
        assert viz.REGION_COLORS[region] == swatches[viz.LABEL_COLORS[label][0]], region


def test_error_legend_shows_the_colours_drawn_on_the_slice():
    pred = np.array([[True], [True], [False]])
    ref = np.array([[True], [False], [True]])
    drawn = viz.error_map(np.zeros((3, 1), np.uint8), pred, ref, opacity=1.0)[:, 0]
    swatches = _swatches("error map (WT)")
    for (r, g, b), name in zip(drawn, ("true positive", "false positive", "false negative"), strict=True):
        assert swatches[name] == f"#{r:02x}{g:02x}{b:02x}", name


def test_heat_map_layers_get_a_colour_scale_instead_of_swatches():
    assert viz.legend_entries("uncertainty") == []
    assert viz.legend_entries("attention gate 2") == []
    assert viz.HEAT_SCALE.startswith("Colour scale")


def test_layers_a_case_cannot_show_are_not_offered():
    everything = viz.available_layers(has_truth=True, has_uncertainty=True)
    assert everything == list(viz.LAYERS)
    bare = viz.available_layers(has_truth=False, has_uncertainty=False)
    assert "labels" in bare and "attention gate 3" in bare
    assert not {"ground truth beside", "error map (WT)", "uncertainty"} & set(bare)
    assert [viz.LAYERS[name].gate for name in bare if viz.LAYERS[name].gate] == [1, 2, 3]
