"""A shareable PDF report of one analysed case (fpdf2).

:func:`build_pdf` takes a :class:`~neuroinsight.pipeline.CaseResult` and returns
the PDF bytes; it reads no files but the embedded font and no session state.
Images are rendered with OpenCV (no browser needed). The same inputs and
``created`` time give byte-identical output.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from fpdf import FPDF
from fpdf.enums import XPos, YPos

from neuroinsight import __version__, viz
from neuroinsight.grading import CAVEAT
from neuroinsight.inference import accuracy_text, seen_patient_note
from neuroinsight.metrics import METRIC_FORMATS, METRIC_LABELS
from neuroinsight.pipeline import CaseResult

DISCLAIMER = "For research and teaching. Not for diagnosis."
_FONT_DIR = Path(__import__("matplotlib").get_data_path()) / "fonts" / "ttf"
_VOLUME_NAMES = {
    "NCR": "Necrotic / non-enhancing core (NCR/NET)",
    "ED": "Peritumoral edema (ED)",
    "ET": "Enhancing tumor (ET)",
    "WT": "Whole tumor (WT = NCR + ED + ET)",
    "TC": "Tumor core (TC = NCR + ET)",
}


class _ReportPDF(FPDF):
    def __init__(self, case_id: str, created: datetime, model: str) -> None:
        super().__init__(format="A4")
        self.case_id, self.created, self.model_name = case_id, created, model
        self.add_font("DejaVu", "", str(_FONT_DIR / "DejaVuSans.ttf"))
        self.add_font("DejaVu", "B", str(_FONT_DIR / "DejaVuSans-Bold.ttf"))
        self.set_auto_page_break(auto=True, margin=18)
        self.set_creation_date(created)

    def header(self) -> None:
        self.set_font("DejaVu", "B", 11)
        self.cell(0, 6, "NeuroInsight \u2014 brain tumor segmentation report", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font("DejaVu", "", 8)
        stamp = self.created.strftime("%Y-%m-%d %H:%M UTC")
        self.cell(
            0,
            5,
            f"Case {self.case_id}   |   {stamp}   |   model {self.model_name}   |   NeuroInsight {__version__}",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        self.line(self.l_margin, self.get_y() + 1, self.w - self.r_margin, self.get_y() + 1)
        self.ln(4)

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font("DejaVu", "", 8)
        self.cell(0, 5, f"{DISCLAIMER}   Page {self.page_no()}/{{nb}}", align="C")

    def heading(self, text: str) -> None:
        self.ln(2)
        self.set_font("DejaVu", "B", 12)
        self.cell(0, 7, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font("DejaVu", "", 9.5)

    def paragraph(self, text: str) -> None:
        self.set_font("DejaVu", "", 9.5)
        self.multi_cell(0, 5, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def image_row(self, images: list[tuple[str, np.ndarray]], height_mm: float = 52) -> None:
        """Images side by side with captions, scaled to the page width."""
        from io import BytesIO

        gap = 3
        widths = [height_mm * rgb.shape[1] / rgb.shape[0] for _, rgb in images]
        scale = min(1.0, (self.epw - gap * (len(images) - 1)) / sum(widths))
        if self.get_y() + height_mm * scale + 10 > self.page_break_trigger:
            self.add_page()
        x, y = self.l_margin, self.get_y()
        for (caption, rgb), width in zip(images, widths, strict=True):
            self.image(BytesIO(viz.png_bytes(rgb)), x=x, y=y, w=width * scale, h=height_mm * scale)
            self.set_xy(x, y + height_mm * scale + 0.5)
            self.set_font("DejaVu", "", 7.5)
            self.cell(width * scale, 4, caption, align="C")
            x += width * scale + gap
        self.set_xy(self.l_margin, y + height_mm * scale + 6)


def _slice_images(
    result: CaseResult, palette: viz.Palette, plane: str, index: int, modality: str, labels: np.ndarray
) -> np.ndarray:
    low, high = result.display_window(modality)  # computed once per modality, not once per image
    gray = viz.window_to_uint8(viz.display_slice(result.case.images[modality], plane, index), low, high)
    return viz.overlay_labels(gray, viz.display_slice(labels, plane, index), opacity=0.5, palette=palette)


def _legend(pdf: _ReportPDF, palette: viz.Palette) -> None:
    pdf.set_font("DejaVu", "", 8)
    for name, color in palette.legend("labels"):
        pdf.set_fill_color(*color)
        pdf.cell(4, 4, "", fill=True)
        pdf.cell(0, 4, f"  {name}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(1)
    pdf.ln(2)


def build_pdf(
    result: CaseResult,
    *,
    grade_evaluation: Mapping | None = None,
    created: datetime | None = None,
    palette: viz.Palette = viz.BRATS_PALETTE,
) -> bytes:
    """Render the report.

    Args:
        result: The analysed case.
        grade_evaluation: The grade classifier's cross-validation numbers.
        created: Timestamp printed in the header (default: now); fix it for reproducible bytes.
        palette: Colours of the label overlays.

    Returns:
        The PDF file as bytes.
    """
    created = created or datetime.now(UTC)
    model_info = result.model_info
    grade_evaluation = dict(grade_evaluation or {})
    case, seg = result.case, result.segmentation
    pdf = _ReportPDF(case.case_id, created, seg.model_name)
    pdf.alias_nb_pages()
    pdf.add_page()

    pdf.heading("Summary")
    sx, sy, sz = case.spacing_mm
    found = "A tumor was found." if result.tumor_found else "No tumor was found by the model."
    pdf.paragraph(
        f"{found} Modalities provided: {', '.join(m.upper() for m in case.modalities)}; the model used "
        f"{', '.join(m.upper() for m in seg.modalities)} ({seg.model_name}). Voxel spacing {sx:.3g} \u00d7 {sy:.3g} "
        f"\u00d7 {sz:.3g} mm (voxel volume {case.voxel_volume_ml * 1000:.3g} mm\u00b3); volumes below in cm\u00b3."
    )
    for warning in result.warnings:
        pdf.paragraph(f"Warning: {warning}")
    with pdf.table(col_widths=(110, 40), text_align=("LEFT", "RIGHT"), first_row_as_headings=True) as table:
        table.row(["Region", "Volume (cm\u00b3)"])
        for key, name in _VOLUME_NAMES.items():
            caveat = "" if result.is_reliable(key) else " (unreliable without T1ce)"
            table.row([name + caveat, f"{result.volumes_ml[key]:.2f} cm\u00b3"])
    pdf.ln(2)
    if result.hgg_probability is None:
        if not result.tumor_found:
            reason = "no tumor was segmented"
        elif not case.has_contrast:
            reason = "it needs T1ce"
        else:
            reason = "no grade classifier is installed"
        grade_text = f"Grade: not estimated ({reason})."
    else:
        auc = grade_evaluation.get("auc")
        auc_text = (
            f" (leave-one-patient-out AUC {auc:.2f} on {grade_evaluation.get('n_cases', '?')} cases)"
            if auc is not None
            else ""
        )
        grade_text = f"Probability of high-grade glioma (HGG): {result.hgg_probability:.0%}{auc_text}. {CAVEAT}"
    pdf.paragraph(grade_text)

    pdf.heading("Images at the slice of largest tumor area")
    labels = seg.labels
    for modality in ("flair", "t1ce" if case.has_contrast else "t2"):
        row = []
        for plane in viz.PLANES:
            index = viz.largest_tumor_slice(labels, plane)
            row.append(
                (f"{modality.upper()} {plane} {index}", _slice_images(result, palette, plane, index, modality, labels))
            )
        pdf.image_row(row)
    _legend(pdf, palette)
    montage = viz.tumor_slices(labels, 6)
    if montage:
        pdf.heading("Axial slices across the tumor (FLAIR)")
        pdf.image_row(
            [(f"z = {z}", _slice_images(result, palette, "axial", z, "flair", labels)) for z in montage], height_mm=30
        )

    if result.scores is not None and case.label is not None:
        pdf.heading("Agreement with the provided ground truth")
        note = seen_patient_note(model_info, case)
        if note:
            pdf.paragraph(note)
        with pdf.table(col_widths=(20, 22, 22, 28, 28, 30), text_align="CENTER") as table:
            shown = ("dice", "iou", "sensitivity", "specificity", "hd95_mm")
            table.row(["Region", *(METRIC_LABELS[name] for name in shown)])
            for region, s in result.scores.items():
                table.row([region, *(format(getattr(s, name), METRIC_FORMATS[name]) for name in shown)])
        index = viz.largest_tumor_slice(case.label, "axial")
        pdf.ln(2)
        pdf.image_row(
            [
                (f"ground truth, axial {index}", _slice_images(result, palette, "axial", index, "flair", case.label)),
                (f"prediction, axial {index}", _slice_images(result, palette, "axial", index, "flair", labels)),
            ],
            height_mm=60,
        )
    else:
        pdf.heading("Agreement with ground truth")
        pdf.paragraph("No ground truth was provided, so no accuracy metrics are reported for this case.")

    pdf.heading("Method")
    pre = model_info.get("preprocess", {})
    tta_note = ", averaged with the left-right mirrored scan (test-time augmentation)" if seg.tta else ""
    whole, core, enhancing = seg.post.region_thresholds
    decoding = (
        f"labels decoded from the nested BraTS regions (whole tumor where P(tumor) > {whole:g}, within it core "
        f"where the core's share > {core:g}, within that enhancing where its share of the core > {enhancing:g})"
        if seg.post.decoding == "regions"
        else "each voxel labelled with its most probable class"
    )
    if seg.post.largest_component_only:
        decoding += ", only the largest tumor component kept"
    if seg.post.core_island_fraction == 1:
        decoding += ", only the largest core island kept as core (the others relabelled edema)"
    elif seg.post.core_island_fraction > 0:
        decoding += (
            f", core islands under {seg.post.core_island_fraction * 100:.0f} % of the largest one relabelled edema"
        )
    size = pre.get("image_size", 128)
    members = model_info.get("ensemble", [])
    ensemble_note = (
        "Ensemble: the class probabilities of "
        + " and ".join(f"{m['model']} ({', '.join(m['modalities'])})" for m in members)
        + " averaged. "
        if members
        else ""
    )
    blank_note = f" ({', '.join(seg.blanked)} missing: given as a blank channel)" if seg.blanked else ""
    n_val = len(model_info.get("val_cases", []))
    validated = f" (and {n_val} more for validation)" if n_val else ""
    pdf.paragraph(
        "2-D Attention-UNet (Oktay et al. 2018) applied slice by slice on axial slices: encoder 32\u219264\u2192128, "
        "bottleneck 256, additive attention gates on every skip connection, 4-class softmax. "
        f"{ensemble_note}Input: {', '.join(pre.get('modalities', seg.modalities))}{blank_note}, z-scored over "
        f"{'brain voxels' if pre.get('normalization', 'brain') == 'brain' else 'the whole volume'}, resized to "
        f"{size}\u00d7{size}; probabilities resized back to the scan's own grid{tta_note}; {decoding}. "
        f"Trained on {len(model_info.get('train_cases', [])) or 'the shared'} BraTS 2018 cases{validated}. "
        f"Measured accuracy: {accuracy_text(model_info)} (models/MODEL_CARD.md). "
        "Regions follow BraTS: WT = labels 1+2+4, TC = 1+4, ET = 4. Dice, IoU, sensitivity and specificity lie in "
        "0 \u2264 x \u2264 1 (higher is better); HD95 is in mm (lower is better)."
    )
    return bytes(pdf.output())


def page_previews(pdf: bytes, *, dpi: int = 60) -> list[bytes]:
    """PNG images of each page via poppler's ``pdftoppm``; empty when it is not installed."""
    if shutil.which("pdftoppm") is None:
        return []
    with tempfile.TemporaryDirectory(prefix="neuroinsight-preview-") as tmp:
        source = Path(tmp) / "report.pdf"
        source.write_bytes(pdf)
        subprocess.run(
            ["pdftoppm", "-png", "-r", str(dpi), str(source), str(Path(tmp) / "page")], check=True, timeout=60
        )
        return [p.read_bytes() for p in sorted(Path(tmp).glob("page*.png"))]
