"""Metrics of the current case against ground truth, and batch evaluation of the data folder."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from neuroinsight import metrics, ui, viz
from neuroinsight.errors import InputError
from neuroinsight.inference import (
    BEFORE_CORE_ISLANDS,
    crossval_choices,
    crossval_rows,
    seen_patient_note,
)
from neuroinsight.pipeline import (
    comparison_rows,
    crossval_marks,
    evaluate_folder,
    held_out_comparison,
    rows_to_csv,
    seen_cases,
    segmented_by,
)

ui.page_header("Metrics")
result = ui.current_result()

st.subheader("Current case")
if result is None:
    st.info("No case is loaded yet.")
    ui.page_link(ui.UPLOAD_PAGE, label="Go to Upload", icon=":material/upload:")
else:
    case, seg = result.case, result.segmentation
    st.markdown(f"**{case.case_id}** · model `{seg.model_name}`")
    ui.show_warnings(result)
    volumes = pd.DataFrame({"region": list(result.volumes_ml), "predicted (cm³)": list(result.volumes_ml.values())})
    if case.label is not None:
        volumes["ground truth (cm³)"] = list(metrics.region_volumes_ml(case.label, case.spacing_mm).values())
    st.dataframe(volumes, hide_index=True, column_config=ui.number_formats(dict.fromkeys(volumes.columns[1:], ".2f")))
    if result.scores is None:
        st.info(
            "This case has no ground truth, so there is nothing to score against. Upload a label map with the scans."
        )
    else:
        note = seen_patient_note(result.model_info, case)
        if note:
            st.warning(note, icon=":material/school:")
        table = pd.DataFrame([{"region": r, **s.to_dict()} for r, s in result.scores.items()])
        ui.metric_table(table)
        st.caption("HD95 in mm from the voxel spacing; empty-mask rule as in BraTS (both empty: Dice 1, HD95 0).")
        curves = {
            r: metrics.per_slice_dice(seg.labels, case.label, labels) for r, labels in metrics.BRATS_REGIONS.items()
        }
        left, right = st.columns(2)
        left.markdown("Per-slice Dice (axial); click a point to open that slice in the Viewer")
        clicked = left.plotly_chart(
            viz.per_slice_dice_figure(curves, palette=ui.palette()),
            key="per_slice",
            on_select="rerun",
            selection_mode="points",
        )
        if clicked.selection.points:
            ui.open_in_viewer(case.case_id, "axial", int(clicked.selection.points[0]["x"]))
        right.markdown("Label confusion (voxels; rows = ground truth)")
        matrix = metrics.confusion_matrix(seg.labels, case.label)
        right.plotly_chart(viz.confusion_figure(matrix, ["background", "NCR", "ED", "ET"]), key="confusion")
        analyses = ui.analyses_of(result)
        if len(analyses) > 1:
            st.markdown(f"Analyses of {case.case_id} in this session")
            compared = pd.DataFrame(comparison_rows(list(analyses.values())))
            formats = {
                c: ".3f" if c.startswith("Dice") else ".1f" for c in compared.columns if c[:4] in ("Dice", "HD95")
            }
            formats["seconds"] = ".1f"
            st.dataframe(compared, hide_index=True, column_config=ui.number_formats(formats))
            st.caption(
                "The same scans segmented with another model or TTA setting (Upload page); the sidebar's "
                "Current case switches between them."
            )

st.subheader("Accuracy on patients the model never saw")
choices = crossval_choices(ui.settings().models_dir)
if not choices:
    st.caption("The models here recorded no per-patient cross-validation (models/MODEL_CARD.md).")
else:
    ran = [label for label, info in choices.items() if segmented_by(result, info)]
    labels = list(choices)
    choice = st.selectbox("Model", labels, index=labels.index(ran[0]) if ran else 0)
    if result is not None and not ran:
        st.caption(f"{result.segmentation.model_name}, which segmented the current case, has no such record.")
    info = choices[choice]
    cv = info["crossval"]
    marks = crossval_marks(result, info)
    st.plotly_chart(
        viz.region_boxplot(crossval_rows(info), "dice", marks=marks, palette=ui.palette()), key="crossval_box"
    )
    st.caption(
        f"Each point is one of {cv['patients']} patients, scored by the {cv['folds']}-fold cross-validation model "
        "that was trained without it (same recipe as the shipped model, fewer patients; hover for the name): "
        "the spread to expect on a new patient."
        + (" Measured before the core-island step (model card)." if cv.get("post") == BEFORE_CORE_ISLANDS else "")
        + (" The star is the current case, scored by the shipped model." if marks else "")
        + (" The diamond is the same patient held out: the shipped model trained on it." if len(marks) > 1 else "")
    )

st.subheader("Batch evaluation of the data folder")
cases = ui.data_cases()
if not cases:
    st.info(f"No cases in {ui.settings().data_dir}. Set NEUROINSIGHT_DATA to a folder of BraTS case folders.")
else:
    st.caption(f"{len(cases)} cases in {ui.settings().data_dir}. Each case with ground truth is segmented and scored.")
    if st.button("Evaluate all cases"):
        bar = st.progress(0.0, text="Evaluating...")
        try:
            rows = evaluate_folder(
                cases, ui.segmenter_for, progress=lambda d, t: bar.progress(d / t, text=f"case {d}/{t}")
            )
        except InputError as err:
            ui.show_error(err)
            rows = []
        bar.empty()
        st.session_state[ui.BATCH_ROWS] = rows
    rows = st.session_state.get(ui.BATCH_ROWS)
    if rows:
        seen = seen_cases(rows)
        if seen:
            st.warning(
                f"{len(seen)} of {len({r['case'] for r in rows})} cases were among the models' own training or "
                "validation patients (column seen_in_training): their scores overstate the accuracy to expect on "
                "new patients. The model card's cross-validated numbers are the fair estimate. "
                + held_out_comparison(rows),
                icon=":material/school:",
            )
        st.plotly_chart(viz.region_boxplot(rows, "dice", palette=ui.palette()), key="box")
        summary = metrics.summarise(rows)
        st.markdown("Mean per region over the scored cases")
        ui.metric_table(
            pd.DataFrame([{"region": r, **{m: v["mean"] for m, v in s.items()}} for r, s in summary.items()])
        )
        st.download_button(
            "Download metrics CSV",
            rows_to_csv(rows),
            file_name="neuroinsight_metrics.csv",
            mime="text/csv",
            on_click="ignore",
        )
