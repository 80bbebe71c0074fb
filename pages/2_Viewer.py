"""Slice viewer: planes, overlays, ground truth, error map, attention, uncertainty, region probabilities,
another analysis of the case beside, 3-D."""

from __future__ import annotations

import streamlit as st

from neuroinsight import ui, viz

ui.page_header("Viewer")
result = ui.require_result()
case, seg = result.case, result.segmentation
ui.show_warnings(result)

controls, view = st.columns([1, 3])
with controls:
    # Every choice is remembered, so a look at the Metrics page and back finds the view as it was.
    modality = st.selectbox(
        "Modality", case.modalities, format_func=str.upper, **ui.remember("modality", "flair", case.modalities)
    )
    window = st.slider(
        "Brightness window (%)",
        0.0,
        100.0,
        step=0.5,
        help="The grey range of the scan, as percentiles of its brain voxels: darker than the first is black, "
        "brighter than the second white. Narrow it for more contrast; the default is 0.5 to 99.5.",
        **ui.remember("window", viz.DEFAULT_WINDOW_PERCENTILES),
    )
    plane = st.radio("Plane", viz.PLANES, horizontal=True, **ui.remember("plane", "axial"))
    opacity = st.slider("Overlay opacity", 0.0, 1.0, step=0.05, **ui.remember("opacity", 0.45))
    # The short name fits the narrow column; the legend under the image spells it out.
    visible = [
        v
        for v, name in viz.LABEL_NAMES.items()
        if st.checkbox(name.split(" (")[0], help=name, **ui.remember(f"show{v}", True))
    ]
    layers = viz.available_layers(has_truth=case.label is not None, has_uncertainty=seg.uncertainty is not None)
    layer = st.radio("Layer", layers, **ui.remember("layer", layers[0], layers))
    others = {t: r for t, r in ui.analyses_of(result).items() if r is not result}
    other = None
    if others:  # the same scans segmented again (Upload page's model or TTA choice)
        chosen = st.selectbox(
            "Compare with",
            [None, *others],
            format_func=lambda t: "nothing" if t is None else ui.analysis_label(others[t]),
            help="Another analysis of this case in this session: its labels beside the layer shown here, then "
            "where the two differ.",
            **ui.remember("compare", None, [None, *others]),
        )
        other = others.get(chosen)
    members = result.model_info.get("ensemble")
    if members and viz.LAYERS[layer].gate is not None:
        st.caption(f"Ensemble: these are the gates of {members[0]['model']}, the first of its models.")


@st.fragment
def slice_view() -> None:
    """Reruns alone on a slider move: cuts, colours and sends one slice."""
    size = case.shape[viz.plane_axis(plane)]
    key = ui.slice_key(case.case_id, plane)
    if st.button("Jump to the largest tumor slice"):
        ui.forget(key)
    largest = viz.largest_tumor_slice(seg.labels, plane)
    index = st.slider("Slice", 0, size - 1, **ui.remember(key, largest, range(size)))
    names = (ui.analysis_label(result), "" if other is None else ui.analysis_label(other))
    images = viz.render_layers(
        result,
        modality,
        plane,
        index,
        layer,
        opacity=opacity,
        visible=visible,
        other=other,
        names=names,
        palette=ui.palette(),
        window=window,
    )
    columns = st.columns(len(images))
    for i, (column, (caption, rgb)) in enumerate(zip(columns, images, strict=True)):
        # The position too: two analyses run alike (same model and TTA) give the same caption.
        column.plotly_chart(viz.image_figure(rgb), config={"displayModeBar": False}, key=f"img_{i}_{caption}")
        column.caption(caption)
        column.download_button(
            "PNG",
            viz.png_bytes(rgb),
            file_name=viz.png_name(case.case_id, caption),
            mime="image/png",
            on_click="ignore",
            icon=":material/download:",
            help="This panel as a PNG, one pixel per voxel, for slides or a paper (the legend is below).",
            key=f"png_{i}_{caption}",
        )


with view:
    slice_view()
    # Below the fragment: the legend depends on the layer and the comparison, not the slice, so a slider
    # move need not resend it.
    legend = viz.legend_entries(layer, ui.palette()) + (
        list(viz.DIFFERENCE_COLORS.items()) if other is not None else []
    )
    if legend:
        st.plotly_chart(viz.legend_figure(legend), config={"staticPlot": True}, key="legend")
    if not viz.legend_entries(layer):
        st.image(viz.heat_scale_bar(), caption=viz.HEAT_SCALE)

# A toggle, not an expander: a collapsed expander's content still runs (marching cubes) and is sent
# (about 1 MB) on every rerun of the page.
if st.toggle("3-D view of WT, TC and ET"):
    st.plotly_chart(viz.mesh_figure(seg.labels, case.spacing_mm, palette=ui.palette()), key="mesh")
