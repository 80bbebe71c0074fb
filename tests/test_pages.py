"""Every page in-process with AppTest: empty states, the demo case, uploads good and bad."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from neuroinsight import io, ui, viz
from tests.conftest import REPO

PAGES = [
    "app.py",
    "pages/1_Upload.py",
    "pages/2_Viewer.py",
    "pages/3_Metrics.py",
    "pages/4_Report.py",
    "pages/6_About.py",
]
TIMEOUT = 180


def page(name: str) -> AppTest:
    """An app session on one page (AppTest starts at the entry point, then switches)."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    return at if name == "app.py" else at.switch_page(name)


@pytest.mark.parametrize("name", PAGES)
def test_every_page_renders_without_a_case(name):
    at = page(name).run()
    assert not at.exception
    assert at.title[0].value
    if name in ("pages/2_Viewer.py", "pages/4_Report.py"):
        assert any("No case is loaded" in i.value for i in at.info)


@pytest.fixture(scope="module")
def demo_session() -> AppTest:
    """An upload page session that loaded and segmented the demo case."""
    at = page("pages/1_Upload.py").run()
    next(b for b in at.button if b.label == "Load the demo case").click().run()
    assert not at.exception
    assert any("Segmented the demo case" in s.value for s in at.success)
    return at


def _with_result(name: str, demo_session: AppTest) -> AppTest:
    at = page(name)
    at.session_state["result"] = demo_session.session_state["result"]
    return at.run()


def test_a_reloaded_page_takes_its_case_back_from_the_url(demo_session):
    # A browser reload is a new session: empty session state, the same URL.
    token = demo_session.query_params[ui.CASE_PARAM]
    reloaded = page("pages/2_Viewer.py")
    reloaded.query_params[ui.CASE_PARAM] = token
    reloaded.run()
    assert not reloaded.exception
    assert not any("No case is loaded" in i.value for i in reloaded.info)
    assert reloaded.session_state["result"] is demo_session.session_state["result"]
    assert reloaded.query_params[ui.CASE_PARAM] == token
    # Moving to another page (which drops the query string) keeps the token in the URL.
    reloaded.switch_page("pages/4_Report.py")
    reloaded.query_params.clear()
    reloaded.run()
    assert reloaded.query_params[ui.CASE_PARAM] == token

    stale = page("pages/2_Viewer.py")
    stale.query_params[ui.CASE_PARAM] = "not-a-kept-case"
    stale.run()
    assert not stale.exception
    assert any("no longer held" in i.value for i in stale.info)
    assert any("No case is loaded" in i.value for i in stale.info)
    assert ui.CASE_PARAM not in stale.query_params


def test_the_sidebar_switches_between_the_sessions_cases(demo_session):
    demo = demo_session.session_state["result"]
    other = replace(demo, case=replace(demo.case, case_id="second_case"))
    at = page("pages/3_Metrics.py")
    at.query_params[ui.CASE_PARAM] = demo_session.query_params[ui.CASE_PARAM]
    at.run()
    assert not [s for s in at.sidebar.selectbox if s.label == "Current case"]  # one case: nothing to switch
    # A second analysis in the same session (what ui.analyse does after segmenting).
    second = ui.recent_results().add(other)
    at.session_state[ui.SESSION_CASES] = [*at.session_state[ui.SESSION_CASES], second]
    at.session_state[ui.RESULT], at.session_state[ui.RESULT_TOKEN] = other, second
    at.run()
    switch = next(s for s in at.sidebar.selectbox if s.label == "Current case")
    assert switch.options == [demo.case.case_id, "second_case"] and switch.value == second
    assert ui.case_label(other) in [c.value for c in at.sidebar.caption]
    assert "second_case" in at.markdown[0].value
    switch.set_value(demo_session.query_params[ui.CASE_PARAM]).run()
    assert not at.exception
    assert at.session_state[ui.RESULT] is demo
    assert at.query_params[ui.CASE_PARAM] == demo_session.query_params[ui.CASE_PARAM]
    assert demo.case.case_id in at.markdown[0].value


def test_case_labels_stay_short_unless_a_case_was_analysed_twice(demo_session):
    demo = demo_session.session_state["result"]
    two = replace(demo.segmentation, model_name="attention_unet.keras", modalities=("t1ce", "flair"))
    seed = replace(demo, segmentation=two)
    seed_no_tta = replace(demo, segmentation=replace(two, uncertainty=None))
    other = replace(demo, case=replace(demo.case, case_id="second_case"))
    case_id = demo.case.case_id
    assert ui.case_labels({"a": demo, "c": other}) == {"a": case_id, "c": "second_case"}
    assert ui.case_labels({"a": demo, "b": seed, "c": other}) == {
        "a": f"{case_id} · 4-mod",
        "b": f"{case_id} · 2-mod",
        "c": "second_case",
    }
    labels = ui.case_labels({"a": demo, "b": seed, "d": seed_no_tta})
    assert labels == {"a": f"{case_id} · 4-mod", "b": f"{case_id} · 2-mod · TTA", "d": f"{case_id} · 2-mod · no TTA"}


def test_metrics_compares_the_analyses_of_one_case(demo_session):
    demo = demo_session.session_state["result"]
    at = page("pages/3_Metrics.py")
    at.query_params[ui.CASE_PARAM] = demo_session.query_params[ui.CASE_PARAM]
    at.run()
    assert not [m for m in at.markdown if m.value.startswith("Analyses of")]  # one analysis: nothing to compare
    # The same scans again with the two-channel model and no TTA; another case, and another patient
    # under the same name (uploads named t1.nii.gz, ... take a folder's name), must stay out.
    seed = replace(demo, segmentation=replace(demo.segmentation, model_name="attention_unet.keras", uncertainty=None))
    other = replace(demo, case=replace(demo.case, case_id="second_case"))
    flair = demo.case.images["flair"][::-1].copy()
    namesake = replace(demo, case=replace(demo.case, images={**demo.case.images, "flair": flair}))
    tokens = [ui.recent_results().add(r) for r in (seed, other, namesake)]
    at.session_state[ui.SESSION_CASES] = [*at.session_state[ui.SESSION_CASES], *tokens]
    at.run()
    assert not at.exception
    assert any(m.value == f"Analyses of {demo.case.case_id} in this session" for m in at.markdown)
    (table,) = [d.value for d in at.dataframe if "flip TTA" in d.value.columns]
    assert list(table["model"]) == [demo.segmentation.model_name, "attention_unet.keras"]
    assert list(table["flip TTA"]) == [True, False]
    assert table["Dice WT"].iloc[0] == pytest.approx(demo.scores["WT"].dice)
    assert list(table["model saw patient"]) == [demo.seen_in_training] * 2


def test_viewer_shows_another_analysis_of_the_case_beside(demo_session):
    demo = demo_session.session_state["result"]
    at = _with_result("pages/2_Viewer.py", demo_session)
    assert not [s for s in at.selectbox if s.label == "Compare with"]  # one analysis: nothing to compare
    # The same scans again with identical settings: the captions alike, the images still both shown.
    again = replace(demo, segmentation=replace(demo.segmentation))
    token = ui.recent_results().add(again)
    at.session_state[ui.SESSION_CASES] = [*at.session_state.get(ui.SESSION_CASES, []), token]
    at.session_state[ui.RESULT_TOKEN] = demo_session.query_params[ui.CASE_PARAM]
    at.run()
    compare = next(s for s in at.selectbox if s.label == "Compare with")
    compare.set_value(token).run()
    assert not at.exception
    captions = [c.value for c in at.caption if " · prediction · " in c.value]
    assert captions == [f"{ui.analysis_label(demo)} · prediction · FLAIR axial {at.slider[-1].value}"] * 2
    assert any(c.value.startswith("differences · ") for c in at.caption)
    assert len(at.get("download_button")) == 3  # a PNG of each panel, alike captions or not
    at.switch_page("pages/3_Metrics.py").run()
    at.switch_page("pages/2_Viewer.py").run()
    assert next(s for s in at.selectbox if s.label == "Compare with").value == token  # kept across pages
    next(r for r in at.radio if r.label == "Layer").set_value("error map (WT)").run()
    assert not at.exception
    label = ui.analysis_label(demo)
    shown = [c.value.removeprefix(f"{label} · ").split(" · ")[0] for c in at.caption if c.value.startswith(label)]
    assert shown == ["WT errors", "prediction"]


def test_recent_results_keeps_the_latest_and_the_revisited():
    store = ui.RecentResults(2)
    first, second = object(), object()
    first_token, second_token = store.add(first), store.add(second)
    assert first_token != second_token
    assert store.get(first_token) is first  # revisited: now the newest
    store.add(object())
    assert store.get(second_token) is None
    assert store.get(first_token) is first


def test_viewer_shows_slices_and_moves(demo_session):
    at = _with_result("pages/2_Viewer.py", demo_session)
    assert not at.exception
    charts = len(at.get("plotly_chart"))
    next(t for t in at.toggle if t.label.startswith("3-D view")).set_value(True).run()
    assert not at.exception and len(at.get("plotly_chart")) == charts + 1  # the mesh, drawn only when asked for
    next(t for t in at.toggle if t.label.startswith("3-D view")).set_value(False).run()
    pngs = at.get("download_button")
    assert [b.proto.label for b in pngs] == ["PNG"]  # one per panel: the labels layer has one
    slider = next(s for s in at.slider if s.label == "Slice")
    first = slider.value
    slider.set_value(first + 5).run()
    assert not at.exception
    assert next(s for s in at.slider if s.label == "Slice").value == first + 5
    layers = next(r for r in at.radio if r.label == "Layer").options
    assert layers == viz.available_layers(has_truth=True, has_uncertainty=True)  # the demo has both
    for layer in layers:
        next(r for r in at.radio if r.label == "Layer").set_value(layer).run()
        assert not at.exception, layer
        assert any(c.value.startswith(("prediction", "WT errors", layer)) for c in at.caption), layer


def test_choices_survive_a_visit_to_another_page(demo_session):
    # Streamlit forgets a widget a run does not draw: without ui.remember these would be defaults again.
    upload = page("pages/1_Upload.py").run()
    next(t for t in upload.toggle if t.label.startswith("Test-time")).set_value(False).run()
    _choose_model(upload, "attention_unet.keras")
    upload.switch_page("pages/6_About.py").run()
    upload.switch_page("pages/1_Upload.py").run()
    assert not next(t for t in upload.toggle if t.label.startswith("Test-time")).value
    assert next(s for s in upload.selectbox if s.label == "Model").value == "attention_unet.keras"

    at = _with_result("pages/2_Viewer.py", demo_session)
    next(r for r in at.radio if r.label == "Plane").set_value("coronal").run()
    next(r for r in at.radio if r.label == "Layer").set_value("uncertainty").run()
    next(s for s in at.slider if s.label == "Slice").set_value(40).run()
    next(s for s in at.slider if s.label == "Brightness window (%)").set_value((10.0, 90.0)).run()
    next(c for c in at.checkbox if c.label == "ED").uncheck().run()
    at.switch_page("pages/3_Metrics.py").run()
    at.switch_page("pages/2_Viewer.py").run()
    assert not at.exception
    assert next(r for r in at.radio if r.label == "Plane").value == "coronal"
    assert next(r for r in at.radio if r.label == "Layer").value == "uncertainty"
    assert next(s for s in at.slider if s.label == "Slice").value == 40
    assert next(s for s in at.slider if s.label == "Brightness window (%)").value == (10.0, 90.0)
    assert not next(c for c in at.checkbox if c.label == "ED").value
    next(b for b in at.button if b.label == "Jump to the largest tumor slice").click().run()
    largest = viz.largest_tumor_slice(demo_session.session_state["result"].segmentation.labels, "coronal")
    assert next(s for s in at.slider if s.label == "Slice").value == largest != 40
    # The Learn page shares the Viewer's axial slice, both ways.
    next(r for r in at.radio if r.label == "Plane").set_value("axial").run()
    next(s for s in at.slider if s.label == "Slice").set_value(50).run()
    at.switch_page("pages/5_Learn.py").run()
    assert next(s for s in at.slider if s.label == "Axial slice").value == 50
    next(s for s in at.slider if s.label == "Axial slice").set_value(60).run()
    at.switch_page("pages/2_Viewer.py").run()
    assert next(s for s in at.slider if s.label == "Slice").value == 60


def test_metrics_and_report_pages_with_a_case(demo_session):
    metrics = _with_result("pages/3_Metrics.py", demo_session)
    assert not metrics.exception
    assert len(metrics.dataframe) >= 2  # volumes and per-region scores (the demo has ground truth)
    scores = metrics.dataframe[1].value
    assert list(scores["region"]) == ["WT", "TC", "ET"]
    assert {"Dice", "HD95 (mm)", "Volume error (%)"} <= set(scores.columns)  # headers for people, not field names
    assert not any("overstate" in w.value for w in metrics.warning)  # no model trained on the demo
    result = demo_session.session_state["result"]
    seen = replace(result, model_info={**result.model_info, "train_cases": [result.case.case_id]})
    at = page("pages/3_Metrics.py")
    at.session_state["result"] = seen
    at.run()
    assert any("training patients" in w.value and "overstate" in w.value for w in at.warning)


def _crossval_marks(at: AppTest) -> list[str]:
    """Names of the marked points on the Metrics page's cross-validation figure (after the 12 patients' boxes)."""
    figure = json.loads(at.get("plotly_chart")[-1].proto.spec)  # the last figure without a batch evaluation
    assert [trace["name"] for trace in figure["data"][:3]] == ["WT", "TC", "ET"]
    assert all(len(trace["y"]) == 12 for trace in figure["data"][:3])
    return [trace["name"] for trace in figure["data"][3:]]


def test_metrics_page_places_the_case_among_the_cross_validated_patients(demo_session):
    at = page("pages/3_Metrics.py").run()
    assert not at.exception and _crossval_marks(at) == []  # no case: the 12 held-out patients only
    assert at.selectbox[0].value == "attention_unet_4mod.keras"
    at = _with_result("pages/3_Metrics.py", demo_session)
    assert at.selectbox[0].value == demo_session.session_state["result"].segmentation.model_name
    assert _crossval_marks(at) == ["current case"]
    at.selectbox[0].set_value("attention_unet.keras").run()
    assert _crossval_marks(at) == []  # another model's patients: the case was not scored by it
    # A shared patient under its own name: the shipped model trained on it, so its held-out score is marked too.
    result = demo_session.session_state["result"]
    at = page("pages/3_Metrics.py")
    at.session_state["result"] = replace(result, case=replace(result.case, case_id="Brats18_2013_11_1"))
    at.run()
    assert _crossval_marks(at) == ["current case", "Brats18_2013_11_1, held out"]
    assert any("Held out in that cross-validation, Brats18_2013_11_1 scored Dice WT" in w.value for w in at.warning)


def test_report_files_are_built_once_per_result(demo_session):
    report = _with_result("pages/4_Report.py", demo_session)
    files = report.session_state["report"]
    assert files.pdf.startswith(b"%PDF") and files.label_map[:2] == b"\x1f\x8b"  # gzip
    assert bool(files.previews) == (shutil.which("pdftoppm") is not None)
    report.run()  # any widget click reruns the page
    assert report.session_state["report"] is files
    upload = page("pages/1_Upload.py")
    upload.session_state["report"] = files
    upload.run()
    next(b for b in upload.button if b.label == "Load the demo case").click().run()
    assert "report" not in upload.session_state  # a new result drops the old report


def _legend_colours(at: AppTest) -> list[str]:
    """The swatch colours of the Viewer's legend (the last figure without the 3-D view)."""
    figure = json.loads(at.get("plotly_chart")[-1].proto.spec)
    return [trace["marker"]["color"] for trace in figure["data"]]


def test_colour_blind_switch_recolours_every_page_and_the_report(demo_session):
    at = _with_result("pages/2_Viewer.py", demo_session)
    assert _legend_colours(at) == [viz.hex_color(c) for c in viz.BRATS_PALETTE.labels.values()]
    pdf = at.switch_page("pages/4_Report.py").run().session_state["report"].pdf
    next(t for t in at.sidebar.toggle if t.label == "Colour-blind-safe colours").set_value(True).run()
    rebuilt = at.session_state["report"]
    assert rebuilt.palette == viz.COLOUR_BLIND_PALETTE.name and rebuilt.pdf != pdf  # its slices, redrawn
    at.switch_page("pages/2_Viewer.py").run()
    assert not at.exception
    assert next(t for t in at.sidebar.toggle if t.label == "Colour-blind-safe colours").value  # kept across pages
    assert _legend_colours(at) == [viz.hex_color(c) for c in viz.COLOUR_BLIND_PALETTE.labels.values()]
    next(r for r in at.radio if r.label == "Layer").set_value("error map (WT)").run()
    assert _legend_colours(at) == [viz.hex_color(c) for c in viz.COLOUR_BLIND_PALETTE.errors.values()]


def test_upload_page_shows_the_input_warnings(demo_session):
    assert demo_session.session_state["result"].warnings == []  # the demo is skull-stripped
    at = page("pages/1_Upload.py")
    at.session_state["result"] = replace(demo_session.session_state["result"], warnings=["Not skull-stripped."])
    at.run()
    assert not at.exception and [w.value for w in at.warning] == ["Not skull-stripped."]
    report = _with_result("pages/4_Report.py", demo_session)
    assert not report.exception
    assert report.session_state["report"].pdf.startswith(b"%PDF")


@pytest.mark.parametrize("name", [*PAGES, "pages/5_Learn.py"])
def test_every_page_shows_a_result_without_t1ce(name, demo_session):
    result = demo_session.session_state["result"]
    case = replace(result.case, images={m: v for m, v in result.case.images.items() if m != "t1ce"})
    at = page(name)
    at.session_state["result"] = replace(
        result, case=case, segmentation=replace(result.segmentation, blanked=("t1ce",)), warnings=["No T1ce."]
    )
    at.run()
    assert not at.exception, at.exception
    if name in ("pages/1_Upload.py", "pages/2_Viewer.py", "pages/3_Metrics.py"):
        assert "No T1ce." in [w.value for w in at.warning]
    if name == "pages/3_Metrics.py":  # the no-contrast model's cross-validation kept no per-patient numbers
        at = page(name)
        at.session_state["result"] = replace(result, model_info={}, warnings=[])
        at.run()
        assert any("which segmented the current case, has no such record" in c.value for c in at.caption)
        assert _crossval_marks(at) == []


def test_home_lists_the_analysis_in_the_history(demo_session):
    at = page("app.py").run()
    assert not at.exception
    assert "demo_case" in at.dataframe[0].value["case"].tolist()


def test_home_leaves_empty_what_a_run_without_t1ce_did_not_store():
    from neuroinsight import history
    from neuroinsight.config import resolve_settings

    record = history.RunRecord("no_contrast_case", "attention_unet_nocontrast.keras", volumes_ml={"WT": 31.5})
    history.record_run(resolve_settings().db_path, record)  # the newest run: first in the table
    at = page("app.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    row = table[table["case"] == "no_contrast_case"].iloc[0]
    assert row["WT cm³"] == 31.5 and pd.isna(row["TC cm³"]) and pd.isna(row["ET cm³"]) and pd.isna(row["P(HGG)"])


def test_home_flags_the_runs_on_a_patient_the_model_trained_on():
    from neuroinsight import history
    from neuroinsight.config import resolve_settings

    for case, seen in (("older_case", None), ("unseen_case", "no"), ("training_case", "training")):
        history.record_run(resolve_settings().db_path, history.RunRecord(case, "m", {"WT": 1.0}, seen_in_training=seen))
    at = page("app.py").run()
    assert not at.exception
    table = at.dataframe[0].value.set_index("case")
    assert table.loc["training_case", "model saw patient"] == "training"
    assert table.loc["unseen_case", "model saw patient"] == "no"
    assert table.loc["older_case", "model saw patient"] == "not recorded"  # a run from a version-1 history
    assert any("overstates the accuracy" in c.value for c in at.caption)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", table.loc["training_case", "time (UTC)"])


def test_home_states_each_models_measured_accuracy():
    at = page("app.py").run()
    lines = [m.value for m in at.markdown if m.value.startswith("- **attention_unet")]
    assert len(lines) == 3  # the three shipped models
    for line in lines:  # cross-validated, and the shipped models were then trained on every patient
        condition = " without T1ce" if "nocontrast" in line else ""  # how the app runs that one
        assert f"4-fold cross-validation of its recipe (12 patients){condition} WT 0." in line
        assert "trained on all 12 patients, so none is left to test it on" in line
    (ensemble,) = [m.value for m in at.markdown if m.value.startswith("- **Ensemble**")]
    assert "cross-validation of its recipe (12 patients) WT 0." in ensemble and "bias field" in ensemble


def _upload(at: AppTest, files: list[tuple[str, bytes]]) -> AppTest:
    at.file_uploader[0].set_value([(name, data, "application/octet-stream") for name, data in files])
    next(b for b in at.button if b.label == "Load and segment").click().run()
    return at


def test_upload_bad_then_good(phantom_dir):
    at = page("pages/1_Upload.py").run()
    _upload(at, [("x_t1ce.nii.gz", b"text, not an image"), ("x_flair.nii.gz", b"more text")])
    assert not at.exception
    assert any("not a NIfTI file" in e.value for e in at.error)
    assert "result" not in at.session_state
    good = [(p.name, p.read_bytes()) for p in sorted(phantom_dir.glob("*.nii.gz"))]
    _upload(at, good)
    assert not at.exception and not at.error
    assert at.session_state["result"].case.case_id == "phantom_1"
    assert at.session_state["result"].case.modalities == io.MODALITIES


def test_learn_page_with_a_case_shows_every_figure(demo_session):
    at = _with_result("pages/5_Learn.py", demo_session)
    assert not at.exception
    headers = [h.value for h in at.subheader]
    for part in ("modalities", "labels", "split", "Preprocessing", "model", "probabilities to labels", "trained"):
        assert any(part.lower() in h.lower() for h in headers), (part, headers)
    captions = " ".join(c.value for c in at.caption)
    assert "Segment a case" not in captions  # the attention gates and the decoding steps are shown
    # modalities, breakdown, preprocessing, one-hot, gates, the four decoding steps
    assert len(at.get("image")) >= 5 + 7 + 4 + 4 + 3 + 4
    assert at.session_state["decoding_stages"]["small core islands made edema"] is not None
    assert _crossval_marks(at) == []  # the last figure: the 12 held-out patients of the shipped model's recipe


def _choose_model(at: AppTest, choice: str) -> None:
    next(s for s in at.selectbox if s.label == "Model").set_value(choice).run()


def test_upload_with_the_ensemble_choice_runs_both_models():
    at = page("pages/1_Upload.py").run()
    _choose_model(at, ui.ENSEMBLE)
    next(b for b in at.button if b.label == "Load the demo case").click().run()
    assert not at.exception
    seg = at.session_state["result"].segmentation
    assert seg.model_name == "attention_unet_4mod.keras + attention_unet.keras"
    assert any(f"model `{seg.model_name}`" in m.value for m in at.markdown)
    assert at.session_state["result"].model_info["crossval"]["preset"] == "four+robust+val0 & improved+val0"
    viewer = page("pages/2_Viewer.py")
    viewer.session_state["result"] = at.session_state["result"]
    viewer.run()
    next(r for r in viewer.radio if r.label == "Layer").set_value("attention gate 1").run()
    assert not viewer.exception
    assert any("gates of attention_unet_4mod.keras" in c.value for c in viewer.caption)
    metrics = page("pages/3_Metrics.py")
    metrics.session_state["result"] = at.session_state["result"]
    metrics.run()  # the ensemble's own cross-validated patients, with the case among them
    assert metrics.selectbox[0].value == "ensemble led by attention_unet_4mod.keras"
    assert _crossval_marks(metrics) == ["current case"]


def test_upload_runs_the_model_named_and_refuses_one_the_case_cannot_feed(phantom_dir):
    at = page("pages/1_Upload.py").run()
    assert list(next(s for s in at.selectbox if s.label == "Model").options)[:2] == [
        ui.model_choices()[ui.AUTOMATIC],
        ui.model_choices()[ui.ENSEMBLE],
    ]
    _choose_model(at, "attention_unet.keras")  # the seed's two channels, though the demo has all four
    next(b for b in at.button if b.label == "Load the demo case").click().run()
    assert not at.exception
    kept = at.session_state["result"]
    assert kept.segmentation.model_name == "attention_unet.keras"
    assert kept.segmentation.modalities == ("t1ce", "flair")
    # The four-modality model on a case of T1ce and FLAIR only: a clear error, the current case kept.
    _choose_model(at, "attention_unet_4mod.keras")
    _upload(
        at,
        [(p.name, p.read_bytes()) for p in sorted(phantom_dir.glob("*_t1ce.nii.gz"))]
        + [(p.name, p.read_bytes()) for p in sorted(phantom_dir.glob("*_flair.nii.gz"))],
    )
    assert not at.exception
    (error,) = [e.value for e in at.error]
    assert "attention_unet_4mod.keras cannot segment phantom_1" in error and "missing T1, T2" in error
    assert at.session_state["result"] is kept


@pytest.fixture
def phantom_data_setting(phantom_data_dir, monkeypatch):
    """The app's data folder set to the phantom folder (settings are cached per process, read once)."""
    from neuroinsight import ui

    monkeypatch.setenv("NEUROINSIGHT_DATA", str(phantom_data_dir))
    ui.settings.clear()
    yield phantom_data_dir
    monkeypatch.undo()
    ui.settings.clear()


def test_batch_evaluation_scores_every_case_of_the_data_folder(phantom_data_setting):
    at = page("pages/3_Metrics.py").run()
    assert any("6 cases in" in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Evaluate all cases").click().run()
    assert not at.exception
    table = at.dataframe[-1].value  # the mean per region, under the box plot
    assert list(table["region"]) == ["WT", "TC", "ET"]
    assert {"Dice", "HD95 (mm)", "Volume error (%)"} <= set(table.columns)
    assert table["Dice"].between(0, 1).all()
    assert any(b.label == "Download metrics CSV" for b in at.get("download_button"))


def test_data_folder_cases_are_listed_with_their_grade(phantom_data_setting):
    at = page("pages/1_Upload.py").run()
    box = next(s for s in at.selectbox if s.label == "Case")
    assert box.options == [f"ph{seed} ({'LGG' if seed >= 4 else 'HGG'})" for seed in range(6)]  # from grades.csv
    assert box.value == "ph0"  # the folder name, as loading needs it
    box.set_value("ph4").run()
    at.switch_page("pages/6_About.py").run()
    at.switch_page("pages/1_Upload.py").run()
    assert next(s for s in at.selectbox if s.label == "Case").value == "ph4"  # kept across pages


def test_about_page_shows_the_model_card_the_app_cites():
    at = page("pages/6_About.py").run()
    card = (REPO / "models" / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert at.expander[0].label.startswith("Model card (models/MODEL_CARD.md)")
    shown = at.expander[0].markdown[0].value
    # Every line as written, except that a link to another repository file is plain text in the app.
    assert "[`EXPERIMENTS.md`](EXPERIMENTS.md)" in card and "](EXPERIMENTS.md)" not in shown
    assert shown.strip() == card.replace("[`EXPERIMENTS.md`](EXPERIMENTS.md)", "`EXPERIMENTS.md`").strip()
