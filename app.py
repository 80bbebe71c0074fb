"""NeuroInsight home page and dashboard (``streamlit run app.py``)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from neuroinsight import history, ui
from neuroinsight.inference import accuracy_text, available_models, read_model_info

ui.page_header("NeuroInsight")
st.markdown(
    "**Brain-tumor segmentation on multi-modal MRI with an Attention-UNet.** Upload a BraTS-style case "
    "(T1, T1ce, T2, FLAIR), get the tumor sub-regions (necrotic core, edema, enhancing tumor) in seconds, "
    "explore them slice by slice and in 3-D, compare with ground truth, and download a PDF summary. "
    "Made for teachers giving demos, researchers exploring a model case by case, and anyone who needs a "
    "readable summary of a case."
)

st.subheader("Start")
left, middle, right = st.columns(3)
ui.page_link(ui.UPLOAD_PAGE, label="Upload your scans", icon=":material/upload:", where=left)
ui.page_link(
    ui.UPLOAD_PAGE,
    label="Try the built-in demo case",
    icon=":material/science:",
    where=middle,
    query_params={"tab": "demo"},
)
ui.page_link(
    ui.UPLOAD_PAGE,
    label=f"Pick a case from the data folder ({len(ui.data_cases())})",
    icon=":material/folder:",
    where=right,
    query_params={"tab": "folder"},
)

result = ui.current_result()
if result is not None:
    st.success(
        f"Current case: **{result.case.case_id}** - whole tumor {result.volumes_ml['WT']:.1f} cm³ "
        f"({result.segmentation.model_name})."
    )
    ui.page_link("pages/2_Viewer.py", label="Open the viewer", icon=":material/visibility:")

st.subheader("Recent analyses")
runs = history.list_runs(ui.settings().db_path, limit=15)
if runs:
    table = pd.DataFrame(
        [
            {
                "time (UTC)": r.created_utc.replace("T", " ")[:16],  # ISO 8601 to the minute, offset dropped
                "case": r.case_id,
                "model": r.model,
                # A run without T1ce stored only its whole tumor: its TC and ET stay empty.
                **{f"{k} cm³": r.volumes_ml.get(k) for k in ("WT", "TC", "ET")},
                "P(HGG)": r.hgg_probability,
                "Dice WT": r.dice["WT"] if r.dice else None,
                "model saw patient": r.seen_in_training or "not recorded",  # runs from before the history kept it
            }
            for r in runs
        ]
    )
    formats = {"WT cm³": ".2f", "TC cm³": ".2f", "ET cm³": ".2f", "P(HGG)": ".2f", "Dice WT": ".3f"}
    st.dataframe(table, hide_index=True, width="stretch", column_config=ui.number_formats(formats))
    if any(r.seen_in_training not in (None, "no") for r in runs):
        st.caption(
            '"model saw patient": training or validation means the model was fitted or selected on that '
            "patient, so its Dice overstates the accuracy to expect on a new one; the cross-validated numbers "
            "below do not."
        )
else:
    st.caption("No analyses yet. They appear here after the first segmentation.")

st.subheader("The models")
for path, modalities in available_models(ui.settings().models_dir):
    inputs = " + ".join(m.upper() for m in modalities)
    info = read_model_info(path)
    st.markdown(f"- **{path.name}** ({inputs}): {accuracy_text(info)}.")
    if info.get("ensemble_crossval"):
        st.markdown(
            f"- **Ensemble** led by {path.name} (opt-in on the Upload page, all four modalities): "
            f"{accuracy_text({'crossval': info['ensemble_crossval']})}; less robust to an uncorrected bias field."
        )
st.caption("Full details, data and measured numbers: the model card, on the About page.")
ui.page_link("pages/6_About.py", label="About and the model card", icon=":material/info:")
