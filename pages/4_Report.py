"""PDF report of the current case, plus the label map (NIfTI) and metrics (CSV)."""

from __future__ import annotations

import streamlit as st

from neuroinsight import ui
from neuroinsight.pipeline import rows_to_csv, score_rows

ui.page_header("Report")
result = ui.require_result()
case, seg = result.case, result.segmentation

files = ui.report_files(result)

left, middle, right = st.columns(3)
# on_click="ignore": a download leaves the page as it is instead of rerunning it (and redrawing the preview).
left.download_button(
    "Download the PDF report",
    files.pdf,
    file_name=f"{case.case_id}_report.pdf",
    mime="application/pdf",
    type="primary",
    on_click="ignore",
)
middle.download_button(
    "Download the label map (NIfTI)",
    files.label_map,
    file_name=f"{case.case_id}_seg.nii.gz",
    mime="application/gzip",
    on_click="ignore",
)
if result.scores is not None:
    csv = rows_to_csv(score_rows(case.case_id, result.scores, seg.model_name))
    right.download_button(
        "Download the metrics (CSV)", csv, file_name=f"{case.case_id}_metrics.csv", mime="text/csv", on_click="ignore"
    )
else:
    right.caption("No ground truth: no metrics to download.")

st.subheader("Preview")
if files.previews:
    for number, png in enumerate(files.previews, start=1):
        st.image(png, caption=f"page {number}", width=720)
else:
    st.caption("Page previews need poppler-utils (pdftoppm); the download above is the full report.")
