"""Pictures of a case: display slices, label overlays, error and heat maps, Plotly figures.

Display convention: slices are shown in radiological orientation (the patient's
right on the image's left), anterior/superior at the top, from canonical RAS
arrays. Only one RGB slice at a time goes to the browser (``binary_string``
images of ~0.2 MB), never a whole volume.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
import plotly.graph_objects as go
from numpy.typing import NDArray

from neuroinsight.metrics import BRATS_REGIONS, METRIC_LABELS, region_volumes_ml

if TYPE_CHECKING:  # pipeline loads Keras; the viewer's drawing does not need it
    from neuroinsight.pipeline import CaseResult

RGB = tuple[int, int, int]
PLANES: tuple[str, ...] = ("axial", "coronal", "sagittal")
_PLANE_AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}
#: Label -> name of the BraTS class.
LABEL_NAMES: dict[int, str] = {
    1: "NCR/NET (necrotic / non-enhancing core)",
    2: "ED (peritumoral edema)",
    4: "ET (enhancing tumor)",
}


def hex_color(rgb: RGB) -> str:
    """``(230, 57, 70)`` -> ``"#e63946"``, the form Plotly takes."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


@dataclass(frozen=True)
class Palette:
    """The colours of the tumor labels and of the error map, chosen together.

    Attributes:
        name: What the sidebar calls it.
        labels: Label (1, 2, 4) -> RGB.
        errors: ``true positive`` / ``false positive`` / ``false negative`` -> RGB.
    """

    name: str
    labels: Mapping[int, RGB]
    errors: Mapping[str, RGB]

    def legend(self, kind: str) -> list[tuple[str, RGB]]:
        """(name, RGB) of the ``labels`` or ``errors`` colours; empty for anything else (heat maps)."""
        if kind == "labels":
            return [(LABEL_NAMES[value], rgb) for value, rgb in self.labels.items()]
        return list(self.errors.items()) if kind == "errors" else []

    @property
    def regions(self) -> dict[str, str]:
        """Region charts share the label colours: WT as edema, TC as the necrotic core, ET as itself."""
        return {region: hex_color(self.labels[label]) for region, label in (("WT", 2), ("TC", 1), ("ET", 4))}


#: Red core, green edema, yellow enhancing tumor: the colours of most BraTS figures.
BRATS_PALETTE = Palette(
    "BraTS",
    labels={1: (230, 57, 70), 2: (46, 204, 113), 4: (255, 209, 26)},
    errors={"true positive": (46, 204, 113), "false positive": (230, 57, 70), "false negative": (52, 152, 219)},
)
#: The Okabe & Ito (2008) colours, which stay apart for red-green (deutan, protan) and blue-yellow
#: (tritan) colour blindness: the BraTS palette's core and edema, like the error map's true and false
#: positives, become near twins (CIEDE2000 12) under simulated deuteranopia; here no two are under 24.
COLOUR_BLIND_PALETTE = Palette(
    "colour-blind safe",
    labels={1: (213, 94, 0), 2: (86, 180, 233), 4: (240, 228, 66)},
    errors={"true positive": (240, 228, 66), "false positive": (213, 94, 0), "false negative": (0, 114, 178)},
)
PALETTES: dict[str, Palette] = {p.name: p for p in (BRATS_PALETTE, COLOUR_BLIND_PALETTE)}
#: Two analyses of one case compared (:func:`difference_map`), in colours neither palette's labels nor
#: error map use (the comparison shows beside either).
DIFFERENCE_COLORS: dict[str, RGB] = {
    "tumor in this analysis only": (214, 39, 160),
    "tumor in the other only": (23, 190, 207),
    "tumor in both, another label": (255, 140, 0),
}


def plane_axis(plane: str) -> int:
    """Array axis that a plane's slider moves along."""
    return _PLANE_AXIS[plane]


def display_slice(volume: NDArray, plane: str, index: int) -> NDArray:
    """Cut a canonical ``(X, Y, Z)`` volume and orient the slice for display."""
    axis = _PLANE_AXIS[plane]
    cut = volume[(slice(None),) * axis + (index,)]  # a view: np.take copies ~20x slower on Fortran order
    # After the cut, rows run along the first remaining axis; transpose so rows run
    # along the superior (axial: anterior) direction, then flip so it points up.
    image = np.flipud(cut.T)
    return np.ascontiguousarray(image if plane == "sagittal" else np.fliplr(image))


def window_to_uint8(image: NDArray, low: float | None = None, high: float | None = None) -> NDArray[np.uint8]:
    """Map intensities to 0..255 between ``low`` and ``high`` (default: 0.5 / 99.5 percentiles of non-zero)."""
    values = image[image != 0]
    if low is None or high is None:
        if values.size == 0:
            return np.zeros(image.shape, dtype=np.uint8)
        low, high = (float(v) for v in np.percentile(values, (0.5, 99.5)))
    span = high - low if high > low else 1.0
    return (np.clip((image - low) / span, 0, 1) * 255).astype(np.uint8)


#: The display window's default percentiles: the extremes would let a few hot voxels grey out the rest.
DEFAULT_WINDOW_PERCENTILES = (0.5, 99.5)


def intensity_window(
    volume: NDArray, percentiles: tuple[float, float] = DEFAULT_WINDOW_PERCENTILES
) -> tuple[float, float]:
    """A volume-wide display window: two percentiles of the non-zero (brain) voxels, subsampled."""
    values = volume[::2, ::2, ::2]
    values = values[values != 0]
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, percentiles)
    return float(low), float(high)


def overlay_labels(
    gray: NDArray[np.uint8],
    labels: NDArray,
    *,
    opacity: float = 0.45,
    visible: Iterable[int] = (1, 2, 4),
    palette: Palette = BRATS_PALETTE,
) -> NDArray[np.uint8]:
    """Blend label colours onto a grey slice; returns RGB uint8 ``(H, W, 3)``."""
    return _paint(gray, {value: labels == value for value in visible}, palette.labels, opacity)


def app_icon(size: int = 64) -> NDArray[np.uint8]:
    """The browser-tab icon: a grey brain with an edema / enhancing rim / necrotic core target in the
    overlay's colours. Drawn here rather than named as a Material icon, which the browser would fetch
    from fonts.gstatic.com: the app must not depend on the internet (hospital networks often have none)."""
    y, x = np.mgrid[:size, :size] / (size - 1) * 2 - 1  # [-1, 1] both ways
    brain = (x / 0.8) ** 2 + (y / 0.95) ** 2 <= 1
    radius = np.hypot(x - 0.25, y + 0.2)
    labels = np.select([radius < 0.14, radius < 0.26, radius < 0.45], [1, 4, 2], 0) * brain
    rgb = overlay_labels(np.where(brain, 150, 0).astype(np.uint8), labels, opacity=0.9)
    return np.dstack([rgb, np.where(brain, 255, 0).astype(np.uint8)])  # transparent outside the brain


def _paint(
    gray: NDArray[np.uint8], masks: Mapping[Hashable, NDArray[np.bool_]], colors: Mapping, opacity: float
) -> NDArray[np.uint8]:
    """Each mask blended in its colour (``colors`` under the same key: a label, an error name) over a grey slice."""
    rgb = gray_rgb(gray).astype(np.float32)
    for name, mask in masks.items():
        rgb[mask] = (1 - opacity) * rgb[mask] + opacity * np.array(colors[name], dtype=np.float32)
    return rgb.astype(np.uint8)


def error_map(
    gray: NDArray[np.uint8],
    pred: NDArray[np.bool_],
    ref: NDArray[np.bool_],
    *,
    opacity: float = 0.6,
    palette: Palette = BRATS_PALETTE,
) -> NDArray[np.uint8]:
    """True positives, false positives and false negatives of one region on a grey slice."""
    masks = {"true positive": pred & ref, "false positive": pred & ~ref, "false negative": ~pred & ref}
    return _paint(gray, masks, palette.errors, opacity)


def difference_map(
    gray: NDArray[np.uint8], mine: NDArray, theirs: NDArray, *, opacity: float = 0.6
) -> NDArray[np.uint8]:
    """Where two label maps of one slice differ (:data:`DIFFERENCE_COLORS`); where they agree, grey."""
    masks = {
        "tumor in this analysis only": (mine > 0) & (theirs == 0),
        "tumor in the other only": (mine == 0) & (theirs > 0),
        "tumor in both, another label": (mine > 0) & (theirs > 0) & (mine != theirs),
    }
    return _paint(gray, masks, DIFFERENCE_COLORS, opacity)


#: Viridis rather than JET: its brightness rises steadily from 0 to 1, so the scale reads the same with
#: red-green colour blindness and in grey print, and shows no false edges where JET's hue bands
#: change (van der Walt & Smith 2015, the matplotlib default map).
HEAT_COLORMAP = cv2.COLORMAP_VIRIDIS


def heat_colors(values: NDArray) -> NDArray[np.uint8]:
    """RGB of a [0, 1] map in the heat colour map (values outside are clipped)."""
    return cv2.applyColorMap((np.clip(values, 0, 1) * 255).astype(np.uint8), HEAT_COLORMAP)[..., ::-1]


def heat_overlay(gray: NDArray[np.uint8], values: NDArray, *, opacity: float = 0.5) -> NDArray[np.uint8]:
    """A [0, 1] map (attention, uncertainty, probability) in the heat colour map over a grey slice."""
    heat = heat_colors(values)
    rgb = gray_rgb(gray).astype(np.float32)
    return ((1 - opacity) * rgb + opacity * heat).astype(np.uint8)


def largest_tumor_slice(labels: NDArray, plane: str = "axial") -> int:
    """Index of the slice with the most tumor voxels along a plane's axis (middle if none)."""
    axis = _PLANE_AXIS[plane]
    other = tuple(a for a in range(3) if a != axis)
    area = (labels > 0).sum(axis=other)
    return int(np.argmax(area)) if area.any() else labels.shape[axis] // 2


def tumor_slices(labels: NDArray, count: int) -> list[int]:
    """``count`` axial slices spread evenly across the tumor (for a montage).

    Slices with under 5 % of the largest tumor area are ignored, so a few stray
    voxels far from the tumor do not stretch the montage.
    """
    area = (labels > 0).sum(axis=(0, 1))
    present = np.nonzero(area >= 0.05 * area.max())[0] if area.any() else np.array([], dtype=int)
    if present.size == 0:
        return []
    return sorted({int(v) for v in np.linspace(present[0], present[-1], num=min(count, present.size)).round()})


def png_bytes(rgb: NDArray[np.uint8]) -> bytes:
    """Encode an RGB image as PNG."""
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1] if rgb.ndim == 3 else rgb))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buffer.tobytes()


def png_name(case_id: str, caption: str) -> str:
    """A file name for a captioned panel: ``Brats18_x_prediction_FLAIR_axial_87.png``."""
    return f"{case_id}_{re.sub(r'[^A-Za-z0-9.+-]+', '_', caption).strip('_')}.png"


def image_figure(rgb: NDArray[np.uint8], *, height: int = 420) -> go.Figure:
    """A light Plotly figure of one RGB image (sent as one PNG string)."""
    import plotly.express as px

    fig = px.imshow(rgb, binary_string=True)
    fig.update_layout(margin={"l": 0, "r": 0, "t": 0, "b": 0}, height=height, dragmode=False)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def mesh_figure(
    labels: NDArray, spacing_mm: Sequence[float], *, step: int = 2, palette: Palette = BRATS_PALETTE
) -> go.Figure:
    """3-D surfaces of WT, TC and ET (marching cubes on a downsampled mask)."""
    from skimage import measure

    opacity = {"WT": 0.25, "TC": 0.5, "ET": 0.9}
    fig = go.Figure()
    small = labels[::step, ::step, ::step]
    for name, values in BRATS_REGIONS.items():
        mask = np.isin(small, values)
        if mask.sum() < 8:
            continue
        verts, faces, _, _ = measure.marching_cubes(
            np.pad(mask, 1).astype(np.float32), 0.5, spacing=tuple(s * step for s in spacing_mm)
        )
        fig.add_trace(
            go.Mesh3d(
                x=verts[:, 0],
                y=verts[:, 1],
                z=verts[:, 2],
                i=faces[:, 0],
                j=faces[:, 1],
                k=faces[:, 2],
                color=palette.regions[name],
                opacity=opacity[name],
                name=name,
                showlegend=True,
            )
        )
    fig.update_layout(margin={"l": 0, "r": 0, "t": 0, "b": 0}, height=420, scene={"aspectmode": "data"})
    return fig


def per_slice_dice_figure(curves: Mapping[str, NDArray], *, palette: Palette = BRATS_PALETTE) -> go.Figure:
    """Per-slice Dice along z for each region (gaps where both slices are empty)."""
    fig = go.Figure()
    for name, values in curves.items():
        fig.add_trace(
            go.Scatter(
                y=values,
                mode="lines+markers",  # a point per slice, to click (a bare line cannot be clicked)
                marker={"size": 4},
                name=name,
                line={"color": palette.regions.get(name)},
            )
        )
    fig.update_layout(
        xaxis_title="axial slice", yaxis_title="Dice", yaxis_range=[0, 1.02], height=320, margin={"t": 10}
    )
    return fig


def confusion_figure(matrix: NDArray, labels: Sequence[str]) -> go.Figure:
    """Heat map of a label confusion matrix (rows: ground truth), normalised per row."""
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, np.maximum(rows, 1))
    text = [[f"{share[i, j]:.1%}<br>{matrix[i, j]:,}" for j in range(len(labels))] for i in range(len(labels))]
    fig = go.Figure(
        go.Heatmap(
            z=share,
            x=list(labels),
            y=list(labels),
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
        )
    )
    fig.update_layout(
        xaxis_title="predicted", yaxis_title="ground truth", yaxis_autorange="reversed", height=380, margin={"t": 10}
    )
    return fig


def region_boxplot(
    rows: Sequence[Mapping[str, object]],
    metric: str = "dice",
    *,
    marks: Mapping[str, Mapping[str, float]] | None = None,
    palette: Palette = BRATS_PALETTE,
) -> go.Figure:
    """Box plot of a metric per region over cases, each case a point named on hover.

    ``marks``: label -> value per region, drawn as large markers on top (e.g. the current case).
    """
    fig = go.Figure()
    for region in ("WT", "TC", "ET"):
        chosen = [r for r in rows if r["region"] == region]
        fig.add_trace(
            go.Box(
                y=[float(r[metric]) for r in chosen],  # type: ignore[arg-type]
                text=[str(r.get("case", "")) for r in chosen],
                name=region,
                marker_color=palette.regions[region],
                boxpoints="all",
                hovertemplate="%{text}: %{y:.3f}<extra></extra>",
            )
        )
    for (label, values), symbol in zip((marks or {}).items(), ("star", "diamond", "x"), strict=False):
        regions = [r for r in ("WT", "TC", "ET") if r in values]
        fig.add_trace(
            go.Scatter(
                x=regions,
                y=[values[r] for r in regions],
                mode="markers",
                name=label,
                marker={"symbol": symbol, "size": 15, "color": "#222222", "line": {"color": "white", "width": 1}},
                hovertemplate=f"{label}: %{{y:.3f}}<extra></extra>",
            )
        )
    fig.update_layout(yaxis_title=METRIC_LABELS.get(metric, metric), height=340, margin={"t": 10})
    return fig


@dataclass(frozen=True)
class SliceView:
    """One slice of a result, ready to draw: the grey background and the label maps under it.

    Attributes:
        result: The :class:`~neuroinsight.pipeline.CaseResult` the slice comes from.
        plane: ``axial``, ``coronal`` or ``sagittal``.
        index: Slice index along the plane's axis.
        title: Caption naming modality, plane and index.
        gray: Windowed background slice.
        pred: Predicted labels on the slice.
        truth: Ground-truth labels on the slice, or None when the case has none.
        opacity: Overlay opacity.
        visible: Labels drawn in the label overlays.
        palette: Colours of the labels and the error map.
    """

    result: CaseResult
    plane: str
    index: int
    title: str
    gray: NDArray[np.uint8]
    pred: NDArray
    truth: NDArray | None
    opacity: float
    visible: tuple[int, ...]
    palette: Palette = BRATS_PALETTE

    def labels(self, labels: NDArray) -> NDArray[np.uint8]:
        """``labels`` over the grey slice, in the view's opacity, visible labels and palette."""
        return overlay_labels(self.gray, labels, opacity=self.opacity, visible=self.visible, palette=self.palette)


Drawn = list[tuple[str, NDArray[np.uint8]]]


def _draw_prediction(view: SliceView) -> Drawn:
    return [(f"prediction · {view.title}", view.labels(view.pred))]


def _draw_truth_beside(view: SliceView) -> Drawn:
    return [(f"ground truth · {view.title}", view.labels(view.truth)), *_draw_prediction(view)]


def _draw_errors(view: SliceView) -> Drawn:
    errors = error_map(view.gray, view.pred > 0, view.truth > 0, opacity=view.opacity, palette=view.palette)
    return [(f"WT errors · {view.title}", errors)]


def _draw_gate(level: int) -> Callable[[SliceView], Drawn]:
    def draw(view: SliceView) -> Drawn:
        # The gates see the network's axial input slices; there is no other plane to show.
        if view.plane != "axial":
            return [(f"{view.title} · attention maps are per axial slice: choose the axial plane", gray_rgb(view.gray))]
        alpha = view.result.segmentation.attention_slice(level, view.index)
        heat = heat_overlay(view.gray, display_slice(alpha[..., None], "axial", 0), opacity=view.opacity)
        return [(f"attention gate {level} · {view.title}", heat)]

    return draw


def _draw_uncertainty(view: SliceView) -> Drawn:
    values = display_slice(view.result.segmentation.uncertainty, view.plane, view.index).astype(np.float32)
    return [(f"uncertainty · {view.title}", heat_overlay(view.gray, values, opacity=view.opacity))]


def outline(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """The pixels of ``mask`` that touch a pixel outside it (4-neighbourhood)."""
    eroded = cv2.erode(mask.astype(np.uint8), np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8))
    return mask & (eroded == 0)


def _draw_probability(region: str) -> Callable[[SliceView], Drawn]:
    def draw(view: SliceView) -> Drawn:
        probability = view.result.segmentation.region_probabilities[region]
        values = display_slice(probability, view.plane, view.index).astype(np.float32) / 255
        rgb = heat_overlay(view.gray, values, opacity=view.opacity)
        # The label's edge on the heat map: where the decision fell within the probabilities.
        rgb[outline(np.isin(view.pred, BRATS_REGIONS[region]))] = 255
        return [(f"probability {region} · {view.title} · white: predicted {region} outline", rgb)]

    return draw


@dataclass(frozen=True)
class Layer:
    """One choice of the viewer's layer menu: what it needs, how it is drawn, which colours it uses.

    Attributes:
        name: Menu label.
        legend: Which palette colours it draws (``labels``, ``errors``); empty for heat maps, which
            ``HEAT_SCALE`` explains.
        draw: Makes the layer's captioned image(s) from one slice.
        needs_truth: Offered only when the case has a ground-truth label map.
        needs_uncertainty: Offered only when the segmentation has an uncertainty map (TTA).
        gate: Attention gate level (1 is the finest) for the gate layers.
    """

    name: str
    legend: str
    draw: Callable[[SliceView], Drawn]
    needs_truth: bool = False
    needs_uncertainty: bool = False
    gate: int | None = None

    def shows(self, *, has_truth: bool, has_uncertainty: bool) -> bool:
        """Whether a case with (or without) truth and uncertainty can show this layer."""
        return (has_truth or not self.needs_truth) and (has_uncertainty or not self.needs_uncertainty)


#: The viewer's layers in menu order; ``render_layers`` draws them, ``legend_entries`` explains them.
LAYERS: dict[str, Layer] = {
    layer.name: layer
    for layer in (
        Layer("labels", "labels", _draw_prediction),
        Layer("ground truth beside", "labels", _draw_truth_beside, needs_truth=True),
        Layer("error map (WT)", "errors", _draw_errors, needs_truth=True),
        *(Layer(f"attention gate {level}", "", _draw_gate(level), gate=level) for level in (1, 2, 3)),
        Layer("uncertainty", "", _draw_uncertainty, needs_uncertainty=True),
        *(Layer(f"probability {region}", "", _draw_probability(region)) for region in BRATS_REGIONS),
    )
}


def available_layers(*, has_truth: bool, has_uncertainty: bool) -> list[str]:
    """Names of the layers a case can show, in menu order."""
    return [
        layer.name for layer in LAYERS.values() if layer.shows(has_truth=has_truth, has_uncertainty=has_uncertainty)
    ]


def render_layers(
    result: CaseResult,
    modality: str,
    plane: str,
    index: int,
    layer: str,
    *,
    opacity: float = 0.45,
    visible: Iterable[int] = (1, 2, 4),
    other: CaseResult | None = None,
    names: tuple[str, str] = ("", ""),
    palette: Palette = BRATS_PALETTE,
    window: tuple[float, float] = DEFAULT_WINDOW_PERCENTILES,
) -> Drawn:
    """The image(s) the viewer shows for one slice: ``[(caption, rgb), ...]``.

    Args:
        result: A :class:`~neuroinsight.pipeline.CaseResult`.
        modality: Background modality.
        plane: ``axial``, ``coronal`` or ``sagittal``.
        index: Slice index along the plane's axis.
        layer: A name from ``LAYERS``; a layer the case cannot show falls back to ``labels``.
        opacity: Overlay opacity.
        visible: Labels drawn in the label overlays.
        other: Another analysis of the same scans (another model or TTA setting): its labels and
            where they differ from ``result``'s follow the layer.
        names: ``result``'s and ``other``'s names, leading the captions when comparing.
        palette: Colours of the labels and the error map.
        window: The background's grey range, as percentiles of the modality's brain voxels.
    """
    case, seg = result.case, result.segmentation
    low, high = result.display_window(modality, window)
    view = SliceView(
        result=result,
        plane=plane,
        index=index,
        title=f"{modality.upper()} {plane} {index}",
        gray=window_to_uint8(display_slice(case.images[modality], plane, index), low, high),
        pred=display_slice(seg.labels, plane, index),
        truth=None if case.label is None else display_slice(case.label, plane, index),
        opacity=opacity,
        visible=tuple(visible),
        palette=palette,
    )
    chosen = LAYERS[layer]
    if not chosen.shows(has_truth=case.label is not None, has_uncertainty=seg.uncertainty is not None):
        chosen = LAYERS["labels"]
    drawn = chosen.draw(view)
    if other is None:
        return drawn
    theirs = display_slice(other.segmentation.labels, plane, index)
    return [
        *((f"{names[0]} · {caption}", rgb) for caption, rgb in drawn),
        (f"{names[1]} · prediction · {view.title}", view.labels(theirs)),
        (f"differences · {view.title}", difference_map(view.gray, view.pred, theirs, opacity=opacity)),
    ]


def gray_rgb(gray: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """A grey slice as RGB."""
    return np.repeat(gray[..., None], 3, axis=-1)


def mask_rgb(mask: NDArray[np.bool_], frame_px: int = 2) -> NDArray[np.uint8]:
    """A binary mask white on black, framed in grey: a mostly white mask (background) would
    otherwise melt into a white page and read as a floating blob."""
    rgb = gray_rgb((mask * 255).astype(np.uint8))
    for edge in (np.s_[:frame_px], np.s_[-frame_px:]):
        rgb[edge] = rgb[:, edge] = 128
    return rgb


#: What a heat-map layer (attention, uncertainty, probability) shows instead of colour swatches.
HEAT_SCALE = "Colour scale (viridis): dark purple = 0 (low), teal = 0.5, yellow = 1 (high)."


def heat_scale_bar(width: int = 480, height: int = 14) -> NDArray[np.uint8]:
    """The heat colour map from 0 (left) to 1 (right), to show beside ``HEAT_SCALE``."""
    return heat_colors(np.tile(np.linspace(0, 1, width), (height, 1)))


def legend_entries(layer: str, palette: Palette = BRATS_PALETTE) -> list[tuple[str, RGB]]:
    """(name, RGB) of each colour the layer draws; empty for heat maps, which use ``HEAT_SCALE``."""
    return palette.legend(LAYERS[layer].legend)


def legend_figure(entries: Sequence[tuple[str, RGB]]) -> go.Figure:
    """A legend alone, each swatch in the exact colour drawn on the slice.

    A Plotly legend rather than Markdown: Streamlit's named text colours are theme colours (its
    "orange" is not the overlay's yellow), and the app renders no raw HTML.
    """
    fig = go.Figure()
    for name, rgb in entries:
        marker = {"symbol": "square", "size": 14, "color": hex_color(rgb)}
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=name, marker=marker))
    fig.update_layout(
        height=30 * len(entries),
        margin={"l": 0, "r": 0, "t": 0, "b": 0},
        showlegend=True,
        legend={"x": 0, "y": 1, "font": {"size": 14}},
        xaxis={"visible": False},
        yaxis={"visible": False},
        plot_bgcolor="rgba(0,0,0,0)",
        paper_bgcolor="rgba(0,0,0,0)",
    )
    return fig


# --------------------------------------------------------------------------- teaching figures


def modality_panel(
    case, z: int, labels: NDArray | None, *, palette: Palette = BRATS_PALETTE
) -> list[tuple[str, NDArray[np.uint8]]]:
    """Every modality at one axial slice, plus the combined coloured label map (seed Figure 1)."""
    panel = []
    for name, volume in case.images.items():
        low, high = intensity_window(volume)
        panel.append((name.upper(), gray_rgb(window_to_uint8(display_slice(volume, "axial", z), low, high))))
    if labels is not None:
        black = np.zeros(display_slice(labels, "axial", z).shape, np.uint8)
        panel.append(("labels", overlay_labels(black, display_slice(labels, "axial", z), opacity=1.0, palette=palette)))
    return panel


def decoding_panel(
    case, stages: Mapping[str, NDArray], z: int, *, modality: str = "flair", palette: Palette = BRATS_PALETTE
) -> list[tuple[str, NDArray[np.uint8]]]:
    """Each label map of :func:`~neuroinsight.inference.decoding_stages` on one axial slice, with
    the whole-tumor and core volumes it gives (what each step changes)."""
    volume = case.images[modality]
    low, high = intensity_window(volume)
    gray = window_to_uint8(display_slice(volume, "axial", z), low, high)
    panel = []
    for name, labels in stages.items():
        volumes = region_volumes_ml(labels, case.spacing_mm)
        caption = f"{name}: WT {volumes['WT']:.1f} cm³, TC {volumes['TC']:.1f} cm³"
        panel.append((caption, overlay_labels(gray, display_slice(labels, "axial", z), palette=palette)))
    return panel


def label_breakdown(labels: NDArray, z: int) -> list[tuple[str, NDArray[np.uint8]]]:
    """The label map split into its classes and the BraTS regions WT, TC, ET (seed Figure 2)."""
    cut = display_slice(labels, "axial", z)
    parts = {
        "background (0)": cut == 0,
        "NCR/NET (1)": cut == 1,
        "edema (2)": cut == 2,
        "enhancing (4)": cut == 4,
        "WT = 1+2+4": np.isin(cut, (1, 2, 4)),
        "TC = 1+4": np.isin(cut, (1, 4)),
        "ET = 4": cut == 4,
    }
    return [(name, mask_rgb(mask)) for name, mask in parts.items()]


def split_figure(split: Mapping[str, Sequence[str]], grades: Mapping[str, str]) -> go.Figure:
    """Stacked bars of HGG/LGG patients per split (seed Figure 3)."""
    fig = go.Figure()
    for grade, color in (("HGG", "#e63946"), ("LGG", "#1f6feb")):
        counts = [sum(grades.get(c) == grade for c in split[part]) for part in ("train", "val", "test")]
        fig.add_trace(go.Bar(x=["train", "validation", "test"], y=counts, name=grade, marker_color=color, text=counts))
    fig.update_layout(barmode="stack", yaxis_title="patients", height=320, margin={"t": 10})
    return fig


def preprocessing_panel(
    case, z: int, config
) -> tuple[list[tuple[str, NDArray[np.uint8]]], list[tuple[str, NDArray[np.uint8]]]]:
    """One slice before and after z-score and resizing, and the 4 one-hot label channels (seed Figure 4)."""
    from neuroinsight.preprocessing import one_hot, prepare_label, prepare_volume

    prepared = prepare_volume(case.images, config)
    before = []
    for index, name in enumerate(config.modalities):
        raw = display_slice(case.images[name], "axial", z)
        before.append((f"{name.upper()} raw {raw.shape[0]}x{raw.shape[1]}", gray_rgb(window_to_uint8(raw))))
        net = prepared.channels[index, z]
        # The network's input is a slice of the canonical array; orient it like the others.
        shown = display_slice(net[..., None], "axial", 0)
        before.append(
            (f"{name.upper()} z-scored {net.shape[0]}x{net.shape[1]}", gray_rgb(window_to_uint8(shown, -2.5, 4.0)))
        )
    channels = []
    if case.label is not None:
        classes = prepare_label(case.label, prepared, config.image_size)[z]
        hot = one_hot(classes)
        names = ("0 background", "1 NCR/NET", "2 edema", "3 enhancing (was 4)")
        for k, name in enumerate(names):
            channel = display_slice(hot[..., k][..., None], "axial", 0)
            channels.append((f"one-hot channel {name}", mask_rgb(channel > 0.5)))
    return before, channels


def history_figure(history: Mapping[str, Sequence[float]], keys: Sequence[str], title: str) -> go.Figure:
    """Training curves per epoch for the given log columns."""
    fig = go.Figure()
    for key in keys:
        if key in history:
            fig.add_trace(go.Scatter(x=list(history["epoch"]), y=list(history[key]), mode="lines+markers", name=key))
    fig.update_layout(xaxis_title="epoch", yaxis_title=title, height=320, margin={"t": 10})
    return fig


def architecture_figure(rows: Sequence[Mapping[str, object]]) -> go.Figure:
    """A U-shaped diagram of the network: encoder down, decoder up, one box per block."""
    blocks = [
        r for r in rows if str(r["layer"]).endswith(("_conv2", "probabilities")) or str(r["type"]) == "AttentionGate"
    ]
    xs, ys, texts, positions = [], [], [], []
    for i, row in enumerate(blocks):
        name = str(row["layer"])
        level = next((int(ch) for ch in name if ch.isdigit()), 4 if name.startswith("bottleneck") else 1)
        xs.append(i)
        ys.append(-level if not name.startswith("probabilities") else -1)
        texts.append(f"{name}<br>{row['output shape']}<br>{row['parameters']:,} params")
        # A gate sits beside the decoder block on its level: label it below so the two don't overlap.
        positions.append("bottom center" if str(row["type"]) == "AttentionGate" else "top center")
    fig = go.Figure(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers+text",
            text=texts,
            textposition=positions,
            marker={"size": 26, "symbol": "square", "color": "#1f6feb"},
            line={"color": "#9aa"},
        )
    )
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"color": "#9aa"}, hoverinfo="skip"))
    fig.update_layout(
        showlegend=False,
        height=460,
        margin={"t": 30, "l": 10, "r": 10, "b": 10},
        xaxis={"visible": False},
        yaxis={"visible": False, "range": [-3.8, -0.2]},
    )
    return fig
