"""Load a case (upload, demo or data folder) and segment it."""

from __future__ import annotations

import streamlit as st

from neuroinsight import io, ui
from neuroinsight.grading import CAVEAT

ui.page_header("Upload")
tta = st.toggle(
    "Test-time augmentation: average with the mirrored scan (better tumor core and enhancing tumor in "
    "cross-validation, about twice the network time; adds an uncertainty map)",
    **ui.remember("tta", True),
)
choices = ui.model_choices()
model = st.selectbox(
    "Model",
    list(choices),
    format_func=choices.__getitem__,
    **ui.remember("model", ui.AUTOMATIC, options=choices),
    help="Automatic is what the model card measures for each set of modalities. The ensemble had better whole "
    "tumor and core in cross-validation, takes about twice the network time and is less robust to an uncorrected "
    "bias field (see the model card). A named model runs as chosen, for comparing models on the same case; it "
    "needs the modalities in brackets.",
)


def segment(case, name: str | None = None) -> None:
    """Analyse a loaded case (None when loading failed) with the options above."""
    if case is not None:
        ui.analyse(case, tta=tta, model=model, name=name)


# The Home page's links open the tab they name (?tab=demo or ?tab=folder).
tabs = {"upload": "Upload scans", "demo": "Demo case", "folder": "Data folder"}
tab_upload, tab_demo, tab_folder = st.tabs(list(tabs.values()), default=tabs.get(st.query_params.get("tab", "")))

with tab_upload:
    st.markdown(
        "Upload **one file per modality** named like `<case>_t1.nii.gz`, `_t1ce`, `_t2`, `_flair` "
        "(BraTS 2023 names `t1n`, `t1c`, `t2w`, `t2f` work too), **or one .zip** of a case folder, **or one 4-D** "
        "Decathlon NIfTI (FLAIR, T1w, T1gd, T2w). T1ce and FLAIR are required; with all four, the four-modality "
        "model runs. A scan without contrast (T1, T2 and FLAIR, no T1ce) gets the whole tumor only. "
        f"Limit {ui.upload_limit()} per file."
    )
    with st.form("upload", clear_on_submit=False):
        scans = st.file_uploader(
            "Scans", type=["nii", "gz", "zip"], accept_multiple_files=True, max_upload_size=ui.UPLOAD_LIMIT_MB
        )
        truth = st.file_uploader(
            "Ground truth label map (optional)", type=["nii", "gz"], max_upload_size=ui.UPLOAD_LIMIT_MB
        )
        submitted = st.form_submit_button("Load and segment", type="primary")
    if submitted:
        if not scans:
            st.warning("Choose the scan files first.")
        else:
            files = {f.name: f.getvalue() for f in scans}
            label = (truth.name, truth.getvalue()) if truth is not None else None
            workdir = ui.settings().home / "tmp"
            case = ui.load_safely(lambda: io.load_uploads(files, label=label, workdir=workdir))
            segment(case)

with tab_demo:
    st.markdown(
        "A real brain anatomy (the MNI ICBM152 template) with a synthetic glioma inserted: necrotic core, "
        "enhancing rim and edema, with ground truth. Built on this machine; no patient data."
    )
    if st.button("Load the demo case", type="primary"):
        segment(ui.demo_case(), name="the demo case")

with tab_folder:
    cases = ui.data_cases()
    if not cases:
        st.info(f"No cases found in {ui.settings().data_dir}. Set NEUROINSIGHT_DATA to a folder of BraTS case folders.")
    else:
        grades = io.read_grades(ui.settings().data_dir)  # shown so that a teacher can pick an LGG, say
        names = [p.name for p in cases]
        choice = st.selectbox(
            "Case",
            names,
            format_func=lambda name: f"{name} ({grades[name]})" if name in grades else name,
            **ui.remember("data_case", names[0], names),
        )
        if st.button("Load and segment this case", type="primary"):
            folder = ui.settings().data_dir / choice
            case = ui.load_safely(lambda: io.load_case(folder))
            segment(case)

ui.show_notices()
result = ui.current_result()
if result is not None:
    seg = result.segmentation
    st.divider()
    read = " + ".join(m.upper() for m in seg.modalities)
    st.markdown(
        f"**Current case {result.case.case_id}** · model `{seg.model_name}` ({read}) · "
        f"{seg.seconds:.1f} s · shape {result.case.shape} · spacing "
        f"{' x '.join(f'{s:.3g}' for s in result.case.spacing_mm)} mm"
    )
    ui.show_warnings(result)
    cols = st.columns(5)
    for col, (name, volume) in zip(cols, result.volumes_ml.items(), strict=True):
        reliable = result.is_reliable(name)
        col.metric(f"{name} (cm³)" + ("" if reliable else " · unreliable"), f"{volume:.2f}")
    if result.hgg_probability is not None:
        st.metric("Probability of high-grade glioma", f"{result.hgg_probability:.0%}")
        st.caption(CAVEAT)
    ui.page_link("pages/2_Viewer.py", label="Open the viewer", icon=":material/visibility:")
    st.caption(ui.LINK_NOTE)
