"""Streamlit glue shared by ``app.py`` and ``pages/``: cached loaders, session state, errors.

The only module of the package that imports ``streamlit``. Models and the grade
classifier are ``st.cache_resource`` (one read-only copy shared by every
session); the current case and its results live in ``st.session_state``, so two
users never see each other's case unless one shares the page address, whose
``?case=`` token (:class:`RecentResults`) also brings a case back after a reload.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Container
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st
from PIL import Image

from neuroinsight import history, inference, io, metrics, phantom, viz
from neuroinsight.config import Settings, resolve_settings
from neuroinsight.errors import InputError
from neuroinsight.grading import GradeModel, load_grade_model
from neuroinsight.inference import DEFAULT_PRECISION, Segmenter, available_models, choose_models
from neuroinsight.pipeline import CaseResult, analyse_case
from neuroinsight.report import build_pdf, page_previews

logger = logging.getLogger(__name__)

RESULT = "result"
#: The current result's key in :class:`RecentResults`, also the page URL's ``?case=`` value.
RESULT_TOKEN = "result_token"
#: Tokens of the results this session analysed or opened, oldest first (the sidebar's case switch).
SESSION_CASES = "session_cases"
CASE_PARAM = "case"
#: Results the server keeps for a reloaded page. Each holds its scans and outputs: 201 MB for a
#: four-modality BraTS case (Brats18_CBICA_AQN_1 with flip TTA), 27 MB more once the Viewer has
#: shown its probability layers (3 bytes a voxel), so four cost under 1 GB.
KEPT_RESULTS = 4
LINK_NOTE = (
    "The page address now carries this case: a reload, a bookmark or the address shared with someone using this "
    f"server opens it again, until the server restarts or {KEPT_RESULTS} newer cases replace it."
)
#: Messages queued for the page's next run (:func:`notify`, :func:`show_notices`).
NOTICES = "notices"
REPORT = "report"
DECODING = "decoding_stages"
#: Session entries derived from the current result, dropped when a new result arrives.
PER_RESULT = (REPORT, DECODING)
BATCH_ROWS = "batch_rows"
#: Widget values kept across page visits (:func:`remember`).
KEPT = "kept_widgets"
COLOUR_BLIND = "colour_blind"
UPLOAD_PAGE = "pages/1_Upload.py"
DISCLAIMER = "NeuroInsight is for research and teaching. It is not a medical device and not for diagnosis."
# The sidebar menu. Streamlit's own menu would name the home page after its file ("app");
# `.streamlit/config.toml` turns that menu off (showSidebarNavigation) and every page draws this one.
MENU = (
    ("app.py", "Home", ":material/home:"),
    (UPLOAD_PAGE, "Upload", ":material/upload:"),
    ("pages/2_Viewer.py", "Viewer", ":material/visibility:"),
    ("pages/3_Metrics.py", "Metrics", ":material/analytics:"),
    ("pages/4_Report.py", "Report", ":material/description:"),
    ("pages/5_Learn.py", "Learn", ":material/school:"),
    ("pages/6_About.py", "About", ":material/info:"),
)


@st.cache_resource
def settings() -> Settings:
    """Paths from the environment (``NEUROINSIGHT_HOME``, ``NEUROINSIGHT_DATA``, ``NEUROINSIGHT_MODELS``)."""
    return resolve_settings()


@st.cache_resource(show_spinner="Loading the segmentation model...")
def get_segmenter(path: str, precision: str = DEFAULT_PRECISION) -> Segmenter:
    """One loaded model per file, shared by all sessions (prediction only reads it)."""
    segmenter = Segmenter.from_path(Path(path), precision=precision)
    import numpy as np

    # Warm-up: the first call traces the graph; do it here, not in a user's first click.
    size = segmenter.preprocess.image_size
    segmenter.predict_slices(np.zeros((1, size, size, segmenter.preprocess.n_channels), np.float32), attention=True)
    return segmenter


@st.cache_resource
def get_grader() -> GradeModel | None:
    """The HGG/LGG classifier, or None when it is not installed."""
    path = settings().models_dir / "grade_classifier.json"
    return load_grade_model(path) if path.exists() else None


@st.cache_resource(show_spinner="Building the demo case...")
def demo_case() -> io.Case:
    """The built-in demo: real anatomy (MNI template) with a synthetic tumor; works offline.

    Falls back to the geometric phantom where nilearn (which ships the template) is missing.
    """
    try:
        return phantom.make_template_case(seed=phantom.DEMO_SEED, case_id="demo_case")
    except InputError:
        return phantom.make_case(seed=phantom.DEMO_SEED, tumor_radius_mm=24.0, case_id="demo_case")


class RecentResults:
    """The last few results, under random tokens, for every session of this server process.

    A browser reload (or a bookmark, or a second tab) starts a new Streamlit session with an
    empty ``st.session_state``. The token in the page's URL (``?case=...``) lets the new
    session take its case back instead of asking for the scans again. Held in memory only,
    so no patient data reaches the disk and a server restart forgets them. The tokens are
    unguessable, but anyone given the link sees the case while the server still holds it.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._results: OrderedDict[str, CaseResult] = OrderedDict()
        self._lock = threading.Lock()  # sessions run in their own threads

    def add(self, result: CaseResult) -> str:
        """Keep a result (dropping the oldest beyond ``size``); return its token."""
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._results[token] = result
            while len(self._results) > self.size:
                self._results.popitem(last=False)
        return token

    def get(self, token: str) -> CaseResult | None:
        """The result kept under a token, or None when there is none (any more)."""
        with self._lock:
            result = self._results.get(token)
            if result is not None:
                self._results.move_to_end(token)  # a case someone came back to is kept longest
            return result


@st.cache_resource
def recent_results() -> RecentResults:
    """The server's :class:`RecentResults`, shared by all sessions."""
    return RecentResults(KEPT_RESULTS)


def keep_result(result: CaseResult) -> None:
    """Make a new result this session's current case, kept for a reload and the case switch."""
    token = recent_results().add(result)
    st.session_state.setdefault(SESSION_CASES, []).append(token)
    _make_current(token, result)


def _make_current(token: str, result: CaseResult) -> None:
    st.session_state[RESULT] = result
    st.session_state[RESULT_TOKEN] = token
    st.query_params[CASE_PARAM] = token
    for key in PER_RESULT:
        st.session_state.pop(key, None)


def session_cases() -> dict[str, CaseResult]:
    """This session's results the server still holds, by token, oldest first."""
    store = recent_results()
    held = {t: result for t in st.session_state.get(SESSION_CASES, []) if (result := store.get(t)) is not None}
    st.session_state[SESSION_CASES] = list(held)
    return held


def analyses_of(result: CaseResult) -> dict[str, CaseResult]:
    """This session's held results of the same scans as ``result`` (same case id and FLAIR voxels), by
    token, oldest first; ``result`` among them. The voxels too: uploads named ``t1.nii.gz`` and so on
    take their case id from a folder name, which two patients can share."""
    case = result.case
    held = session_cases().items()
    return {t: r for t, r in held if r.case.case_id == case.case_id and r.case.fingerprint == case.fingerprint}


def analysis_label(result: CaseResult) -> str:
    """What ran: the model and whether flip TTA did."""
    seg = result.segmentation
    return seg.model_name + (" · flip TTA" if seg.tta else "")


def case_label(result: CaseResult) -> str:
    """A result in full: the case, the model and whether flip TTA ran."""
    return f"{result.case.case_id} · {analysis_label(result)}"


def case_labels(results: dict[str, CaseResult]) -> dict[str, str]:
    """Token -> the case switch's short label, which the sidebar's width shows whole: the case id,
    and for a case analysed more than once the model (``4-mod``, ``2-mod``, ``ensemble``) and,
    if that still leaves two alike, whether flip TTA ran. :func:`case_label` spells it out.
    """

    def model(result: CaseResult) -> str:
        return "ensemble" if result.model_info.get("ensemble") else f"{len(result.segmentation.modalities)}-mod"

    def tta(result: CaseResult) -> str:
        return "TTA" if result.segmentation.tta else "no TTA"

    labels = {t: r.case.case_id for t, r in results.items()}
    for detail in (model, tta):
        alike = [labels[t] for t in results]
        labels = {
            t: f"{labels[t]} · {detail(r)}" if alike.count(labels[t]) > 1 else labels[t] for t, r in results.items()
        }
    return labels


def page_link(page: str, label: str, icon: str, *, where=st, query_params: dict[str, str] | None = None) -> None:
    """``st.page_link`` (in ``where``, a column say) that keeps the current case in the address.

    A plain link lands on an address without ``?case=``, which the page then adds: two
    browser-history entries per move, so Back had to be pressed twice to leave a page.
    """
    where.page_link(page, label=label, icon=icon, query_params=_with_case(query_params))


def _with_case(query_params: dict[str, str] | None = None) -> dict[str, str] | None:
    """``query_params`` plus the current case's ``?case=`` token (None when there is neither)."""
    params = dict(query_params or {})
    if (token := st.session_state.get(RESULT_TOKEN)) is not None:
        params[CASE_PARAM] = token
    return params or None


def _case_switch() -> None:
    """A sidebar choice among this session's cases, shown once there are two or more."""
    cases = session_cases()
    current = st.session_state.get(RESULT_TOKEN)
    if len(cases) < 2 or current not in cases:
        return
    tokens, labels = list(cases), case_labels(cases)
    chosen = st.selectbox(
        "Current case",
        tokens,
        index=tokens.index(current),
        format_func=labels.__getitem__,
        help=f"Cases segmented in this session, held until {KEPT_RESULTS} newer ones on this server replace them.",
    )
    st.caption(case_label(cases[current]))  # the model and TTA, wrapped rather than cut off
    if chosen != current:
        _make_current(chosen, cases[chosen])
        st.rerun()  # the menu above was drawn with the previous case's links


def _case_from_url() -> str | None:
    """Keep the current case's token in the URL; on a fresh session, take the URL's case back.

    Returns a message for the page when the URL names a case the server no longer holds.
    """
    token = st.session_state.get(RESULT_TOKEN)
    if token is not None:
        # An address without it (typed in, or from before the case was loaded) gets it back for a reload.
        if st.query_params.get(CASE_PARAM) != token:
            st.query_params[CASE_PARAM] = token
        return None
    asked = st.query_params.get(CASE_PARAM)
    if asked is None:
        return None
    result = recent_results().get(asked)
    if result is None:
        del st.query_params[CASE_PARAM]
        return (
            f"The case this link pointed to is no longer held: the server keeps the last {KEPT_RESULTS} analysed "
            "cases in memory until it restarts. Load the case again on the Upload page."
        )
    st.session_state[SESSION_CASES] = [asked]
    _make_current(asked, result)
    return None


def notify(kind: str, text: str) -> None:
    """Queue a message (``kind``: success, info or warning) for :func:`show_notices` on the page's next run.

    For messages written just before a rerun, which would erase them if shown at once.
    """
    st.session_state.setdefault(NOTICES, []).append((kind, text))


def show_notices() -> None:
    """Show the queued messages once."""
    for kind, text in st.session_state.pop(NOTICES, []):
        getattr(st, kind)(text)


def remember(key: str, default: Any, options: Container | None = None) -> dict[str, Any]:
    """Keyword arguments for a widget that keeps its value when the user leaves the page and comes back.

    Streamlit drops the state of a widget that a run does not draw, so each visit to a page would
    start its widgets at their defaults again (the Upload page's model, the Viewer's layer). A copy
    outside the widget's own key survives and seeds it. ``options``: the values the widget offers
    now, when a kept one may not be among them (another case without T1, say); the default then
    returns. The widget itself takes no ``value`` or ``index``.
    """
    kept = st.session_state.setdefault(KEPT, {})
    value = kept.get(key, default)
    if options is not None and value not in options:
        value = default
    st.session_state[key] = kept[key] = value
    return {"key": key, "on_change": _keep, "args": (key,)}


def _keep(key: str) -> None:
    st.session_state[KEPT][key] = st.session_state[key]


def forget(key: str) -> None:
    """Let a :func:`remember` widget start at its default on the next run."""
    st.session_state.get(KEPT, {}).pop(key, None)


def slice_key(case_id: str, plane: str) -> str:
    """The Viewer's remembered slice of a case in a plane: each case opens at its largest tumor
    slice, then where it was left."""
    return f"slice_{plane}_{case_id}"


def open_in_viewer(case_id: str, plane: str, index: int) -> None:
    """Go to the Viewer showing one slice (a point clicked on the Metrics page's per-slice Dice)."""
    kept = st.session_state.setdefault(KEPT, {})
    kept["plane"], kept[slice_key(case_id, plane)] = plane, index
    st.switch_page("pages/2_Viewer.py", query_params=_with_case())


def palette() -> viz.Palette:
    """The colours this session chose in the sidebar (:func:`page_header`)."""
    return viz.COLOUR_BLIND_PALETTE if st.session_state.get(KEPT, {}).get(COLOUR_BLIND) else viz.BRATS_PALETTE


def show_error(err: Exception) -> None:
    """A user-facing error box."""
    st.error(f"{err}", icon=":material/error:")


def current_result() -> CaseResult | None:
    """This session's analysed case, if any."""
    return st.session_state.get(RESULT)


def require_result() -> CaseResult:
    """The session's result, or a message with a link to the upload page and a stop."""
    result = current_result()
    if result is None:
        st.info("No case is loaded yet. Load the demo case, a case from the data folder, or upload your own scans.")
        page_link(UPLOAD_PAGE, label="Go to Upload", icon=":material/upload:")
        st.stop()
    return result


@dataclass(frozen=True)
class ReportFiles:
    """The Report page's downloads and previews for one result."""

    pdf: bytes
    previews: list[bytes]  # one PNG per page; empty without poppler's pdftoppm
    label_map: bytes  # the segmentation as .nii.gz
    palette: str  # the colours its images were drawn in


def report_files(result: CaseResult) -> ReportFiles:
    """Build the report files once per result and keep them in the session.

    Every widget click reruns the page; without this each rerun would build the PDF again,
    run ``pdftoppm`` for its previews and re-encode the label map. ``analyse`` drops them
    when a new result arrives; another choice of colours builds them again.
    """
    chosen = palette()
    kept = st.session_state.get(REPORT)
    if kept is None or kept.palette != chosen.name:
        with st.spinner("Building the PDF report..."):
            grader = get_grader()
            pdf = build_pdf(result, grade_evaluation=grader.evaluation if grader else None, palette=chosen)
            label_map = io.label_map_bytes(result.segmentation.labels, result.case)
            kept = ReportFiles(pdf=pdf, previews=page_previews(pdf), label_map=label_map, palette=chosen.name)
            st.session_state[REPORT] = kept
    return kept


def decoding_stages(result: CaseResult) -> dict:
    """:func:`neuroinsight.inference.decoding_stages` of the current result, once per result."""
    if DECODING not in st.session_state:
        st.session_state[DECODING] = inference.decoding_stages(result.segmentation, result.case.voxel_volume_ml)
    return st.session_state[DECODING]


#: The Upload page's model choices besides the shipped model files.
AUTOMATIC, ENSEMBLE = "automatic", "ensemble"


def model_choices() -> dict[str, str]:
    """Choice -> label for the Upload page: automatic, the ensemble, then each shipped model file.

    A named model lets a researcher run, say, the seed's two-channel model on a four-modality
    case and compare it with the automatic choice (the sidebar's case switch holds both).
    """
    choices = {
        AUTOMATIC: "Automatic: the four-modality model with all four modalities, else the two-channel one",
        ENSEMBLE: "Ensemble: the four-modality and the two-channel model averaged (all four modalities)",
    }
    for path, needs in available_models(settings().models_dir):
        choices[path.name] = f"{path.name} ({' + '.join(m.upper() for m in needs)})"
    return choices


def segmenter_for(case: io.Case, *, model: str = AUTOMATIC) -> Segmenter:
    """The segmenter for ``model`` (a :func:`model_choices` key): a named file, the shipped model for
    the case's modalities, or with ``ENSEMBLE`` all that fit, averaged."""
    if model not in (AUTOMATIC, ENSEMBLE):
        return get_segmenter(str(settings().models_dir / model))  # lacking modalities: its InputError says which
    paths = choose_models(settings().models_dir, case.modalities, ensemble=model == ENSEMBLE)
    if model == ENSEMBLE and len(paths) == 1:
        notify(
            "info",
            f"The ensemble needs all four modalities; {case.case_id} has {', '.join(case.modalities)}, so "
            f"{paths[0].name} runs alone.",
        )
    return Segmenter.ensemble([get_segmenter(str(path)) for path in paths])


def analyse(case: io.Case, *, tta: bool = False, model: str = AUTOMATIC, name: str | None = None) -> None:
    """Segment a case with a progress bar, keep the result in the session, record it in the history
    and rerun the page, which then says "Segmented NAME" (:func:`show_notices`; ``name`` defaults to
    the case id).

    The rerun draws the whole page for the new case, its menu links (which carry the case's
    token) included. When the case cannot be processed, the error is shown and the previous
    result stays in place.
    """
    try:
        segmenter = segmenter_for(case, model=model)
        bar = st.progress(0.0, text=f"Segmenting {case.case_id}...")

        def report(done: int, total: int) -> None:
            bar.progress(done / total, text=f"Segmenting {case.case_id}: batch {done}/{total}")

        result = analyse_case(case, segmenter, get_grader(), tta=tta, progress=report)
        bar.empty()
    except InputError as err:
        show_notices()
        show_error(err)
        return
    keep_result(result)
    _record(result)
    notify("success", f"Segmented {name or case.case_id}. Open the Viewer to explore it.")
    st.rerun()


def _record(result: CaseResult) -> None:
    dice = {r: s.dice for r, s in result.scores.items()} if result.scores else None
    record = history.RunRecord(
        case_id=result.case.case_id,
        model=result.segmentation.model_name,
        volumes_ml={k: v for k, v in result.volumes_ml.items() if result.is_reliable(k)},  # never store a guess
        hgg_probability=result.hgg_probability,
        dice=dice,
        seconds=result.segmentation.seconds,
        seen_in_training=result.seen_in_training,
    )
    try:
        history.record_run(settings().db_path, record)
    except OSError as err:  # history is a convenience; never lose a result over it
        logger.warning("history not written: %s", err)
        notify("warning", f"The analysis history could not be written ({err}).")


def show_warnings(result: CaseResult) -> None:
    """The result's warnings (input unlike the training data, no contrast), one box each."""
    for warning in result.warnings:
        st.warning(warning, icon=":material/warning:")


def load_safely(loader: Callable[[], io.Case]) -> io.Case | None:
    """Run a case loader; show its InputError instead of raising."""
    try:
        return loader()
    except InputError as err:
        show_error(err)
        return None


def data_cases() -> list[Path]:
    """Case folders in the configured data folder (empty if it does not exist)."""
    try:
        return io.list_cases(settings().data_dir)
    except InputError:
        return []


def model_card() -> str | None:
    """models/MODEL_CARD.md as Markdown for a page, or None if absent.

    Its links to other repository files become plain text: in the app they would lead to a
    missing page.
    """
    card = settings().models_dir / "MODEL_CARD.md"
    if not card.exists():
        return None
    return re.sub(r"\[([^\]]+)\]\((?!https?:)[^)]+\)", r"\1", card.read_text(encoding="utf-8"))


def number_formats(formats: dict[str, str]) -> dict:
    """``st.dataframe`` column settings showing each named column in a format spec (``".2f"``, ``"+.1f"``).

    Rounding the frame instead would show 51.1 under 113.58: pandas drops trailing zeros.
    """
    return {name: st.column_config.NumberColumn(format="%" + spec) for name, spec in formats.items()}


def metric_table(table) -> None:
    """A metrics table (pandas; columns named as :data:`metrics.METRIC_LABELS` keys) with people's headers and
    each metric's precision (:data:`metrics.METRIC_FORMATS`), not pandas' mix of 3 to 6 digits."""
    formats = number_formats({label: metrics.METRIC_FORMATS[name] for name, label in metrics.METRIC_LABELS.items()})
    st.dataframe(table.rename(columns=metrics.METRIC_LABELS), hide_index=True, column_config=formats)


#: The drop zones' limit in MB, from the limit the file checks apply (config.toml's
#: ``server.maxUploadSize`` must not be lower: the server refuses larger uploads first).
UPLOAD_LIMIT_MB = io.MAX_FILE_BYTES // 1024**2


def upload_limit() -> str:
    """The per-file upload limit as the page states it (the drop zone shows the same value)."""
    return io.size_text(io.MAX_FILE_BYTES)


def page_header(title: str) -> None:
    """Page config, sidebar menu, title and the one-line disclaimer every page carries."""
    st.set_page_config(page_title=f"{title} · NeuroInsight", page_icon=Image.fromarray(viz.app_icon()), layout="wide")
    lost_case = _case_from_url()
    with st.sidebar:
        for path, label, menu_icon in MENU:
            page_link(path, label=label, icon=menu_icon)
        _case_switch()
        st.toggle(
            "Colour-blind-safe colours",
            help="Label and error-map colours that stay apart with red-green or blue-yellow colour blindness "
            "(Okabe & Ito): orange core, sky-blue edema, yellow enhancing tumor. Off: the red, green and yellow "
            "of most BraTS figures. Applies to every page and the PDF.",
            **remember(COLOUR_BLIND, False),
        )
    st.title(title)
    st.caption(DISCLAIMER)
    if lost_case:
        st.info(lost_case, icon=":material/link_off:")
    if os.environ.get("NEUROINSIGHT_DEBUG"):
        st.caption(f"data: {settings().data_dir} · models: {settings().models_dir} · home: {settings().home}")
