"""Learn: the seed's figures rebuilt live from data, the model explained, and its training history."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from neuroinsight import io, ui, viz
from neuroinsight.data import split_cases
from neuroinsight.inference import accuracy_text, crossval_rows, read_model_info
from neuroinsight.model import layer_table
from neuroinsight.preprocessing import SEED_PREPROCESS
from neuroinsight.training import read_history


def show(images: list, columns: int = 5) -> None:
    """Images in rows of ``columns`` with captions."""
    for start in range(0, len(images), columns):
        for column, (caption, rgb) in zip(st.columns(columns), images[start : start + columns], strict=False):
            column.image(rgb, caption=caption, width="stretch")


ui.page_header("Learn")
result = ui.current_result()
case = result.case if result is not None else ui.demo_case()
labels = case.label if case.label is not None else (result.segmentation.labels if result else None)
st.caption(f"Case: **{case.case_id}**" + ("" if result else " (the built-in demo; load another on the Upload page)"))
# The Viewer's axial slice: a teacher moving between the two pages stays on the same slice.
largest = viz.largest_tumor_slice(labels if labels is not None else case.images["flair"] > 0)
z = st.slider(
    "Axial slice",
    0,
    case.shape[2] - 1,
    **ui.remember(ui.slice_key(case.case_id, "axial"), largest, range(case.shape[2])),
)

st.subheader("1. Four MRI modalities per patient")
st.markdown(
    "**T1** shows anatomy; **T1ce** (after gadolinium) makes the *enhancing rim* of an aggressive tumor bright; "
    "**T2** and **FLAIR** show water: *edema* around the tumor is bright, and FLAIR darkens the CSF so edema "
    "stands out. Without contrast (no T1ce) a network can still outline the whole tumor from T1, T2 and FLAIR, "
    "but not the enhancing tumor: only T1ce shows enhancement (the no-contrast model in the model card)."
)
show(viz.modality_panel(case, z, labels, palette=ui.palette()))

if labels is not None:
    st.subheader("2. Ground-truth labels and the BraTS regions")
    st.markdown(
        "Labels: 1 necrotic / non-enhancing core, 2 edema, 4 enhancing tumor. Methods are scored on nested regions: "
        "whole tumor **WT** = 1+2+4, tumor core **TC** = 1+4, enhancing tumor **ET** = 4."
    )
    show(viz.label_breakdown(labels, z), columns=7)

st.subheader("3. Stratified split by patient")
grades = io.read_grades(ui.settings().data_dir)
if len(grades) >= 4:
    split = split_cases(grades)
    st.markdown("Whole patients go to train, validation or test, keeping the HGG/LGG mix (the split training uses).")
    st.plotly_chart(viz.split_figure(split, grades), key="split")
else:
    st.info(f"No graded data folder at {ui.settings().data_dir} (set NEUROINSIGHT_DATA); the split needs grades.csv.")

st.subheader("4. Preprocessing and one-hot labels (the seed's generator)")
st.markdown(
    "The seed z-scores each volume (mean 0, standard deviation 1), resizes slices to 128x128 and stacks T1ce and "
    "FLAIR as two channels; labels map 4 -> 3 and become 4 one-hot channels."
)
seed_case = case
if not all(m in case.images for m in SEED_PREPROCESS.modalities):
    seed_case = ui.demo_case()
    st.caption("This case has no T1ce, which the seed's generator reads: shown on the built-in demo case.")
before, channels = viz.preprocessing_panel(seed_case, min(z, seed_case.shape[2] - 1), SEED_PREPROCESS)
show(before, columns=4)
if channels:
    show(channels, columns=4)

st.subheader("5. The model")
model_path = ui.settings().models_dir / "attention_unet.keras"
if model_path.exists():
    segmenter = ui.get_segmenter(str(model_path))
    rows = layer_table(segmenter.model)
    st.markdown(
        f"Attention-UNet, {sum(int(r['parameters']) for r in rows):,} parameters. Each skip connection passes an "
        "**attention gate** that weights encoder features by where the coarser decoder features point (Oktay 2018)."
    )
    st.plotly_chart(viz.architecture_figure(rows), key="architecture")
    with st.expander("Every layer"):
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    if result is not None and result.segmentation.attention:
        st.markdown("Attention coefficients of each gate on this slice:")
        st.image(viz.heat_scale_bar(), caption=viz.HEAT_SCALE)
        flair_low, flair_high = result.display_window("flair")
        gray = viz.window_to_uint8(viz.display_slice(case.images["flair"], "axial", z), flair_low, flair_high)
        gates = []
        for level in sorted(result.segmentation.attention):
            alpha = viz.display_slice(result.segmentation.attention_slice(level, z)[..., None], "axial", 0)
            gates.append((f"gate {level}", viz.heat_overlay(gray, alpha)))
        show(gates, columns=3)
    else:
        st.caption("Segment a case (Upload page) to see where each attention gate looks.")

    st.subheader("6. From probabilities to labels")
    if result is not None and result.segmentation.prepared is not None:
        st.markdown(
            "The network gives each voxel four class probabilities. The simplest reading takes the most probable "
            "class. NeuroInsight instead decides the nested BraTS regions in turn (whole tumor, then core within it, "
            "then enhancing tumor within that) with thresholds chosen by cross-validation, keeps the largest tumor "
            "component, and relabels as edema any core island under 30 % of the largest one. Each step below is "
            "measured in the model card; the last panel is the segmentation shown everywhere else. The Viewer's "
            "probability layers show each region's probability on any slice, with the decided outline on it."
        )
        show(viz.decoding_panel(case, ui.decoding_stages(result), z, palette=ui.palette()), columns=4)
    else:
        st.caption("Segment a case (Upload page) to see how its probabilities become labels.")

    st.subheader("7. How the shipped model was trained")
    history = read_history(model_path.with_suffix(".log.csv"))
    info = read_model_info(model_path)
    if history:
        left, right = st.columns(2)
        left.plotly_chart(viz.history_figure(history, ["loss", "val_loss"], "loss"), key="loss")
        # A model trained on every patient logs no validation Dice; show its training Dice then.
        part = "val_" if "val_dice_wt" in history else ""
        dice_keys = [f"{part}dice_{region}" for region in ("wt", "tc", "et", "regions")]
        right.plotly_chart(viz.history_figure(history, dice_keys, "Dice"), key="dice")
    st.markdown(f"Measured accuracy: {accuracy_text(info)}.")
    held_out = crossval_rows(info)
    if held_out:
        st.plotly_chart(viz.region_boxplot(held_out, "dice", palette=ui.palette()), key="crossval_box")
        st.caption(
            "The same cross-validation patient by patient (hover for names): each was scored by a model trained "
            "without it. The Dice the training curve reaches on patients it learns from is higher; the spread here "
            "is what to expect on a new patient. The Metrics page places the current case among them."
        )
else:
    st.info("No model in the models folder; train one with `python -m neuroinsight train`.")
