"""Concurrent sessions, shared model, private temp files, security settings."""

from __future__ import annotations

import logging
import re
import threading
import time
import tomllib

import pytest
from streamlit.testing.v1 import AppTest

from neuroinsight import ui
from tests.conftest import REPO


def _upload_session(files) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=240).switch_page("pages/1_Upload.py").run()
    at.file_uploader[0].set_value([(name, data, "application/octet-stream") for name, data in files])
    return at


@pytest.fixture
def runtime_kept_between_runs(monkeypatch):
    """Keep Streamlit's Runtime singleton for AppTests running at once (a harness limit, not the app's).

    Each ``AppTest.run`` installs a Runtime stand-in and clears it when it ends. A page that reruns
    itself (``ui.analyse`` does after segmenting) asks for the Runtime again, and would find none
    if the other session's run had ended in between. A real server has one Runtime throughout.
    """
    from streamlit.runtime import Runtime

    last: list[Runtime] = []

    def instance(cls) -> Runtime:
        if cls._instance is not None:
            last[:] = [cls._instance]
        if not last:
            raise RuntimeError("Runtime hasn't been created!")
        return last[0]

    monkeypatch.setattr(Runtime, "instance", classmethod(instance))


@pytest.mark.usefixtures("runtime_kept_between_runs")
def test_two_sessions_segment_different_cases_at_once(phantom_data_dir, home, caplog):
    cases = {"ph2": phantom_data_dir / "ph2", "ph3": phantom_data_dir / "ph3"}
    sessions = {
        cid: _upload_session([(p.name, p.read_bytes()) for p in sorted(folder.glob("*.nii.gz"))])
        for cid, folder in cases.items()
    }
    errors: list[BaseException] = []
    ui.get_segmenter.clear()  # start cold, so the load count below is exact

    def run(at: AppTest) -> None:
        try:
            next(b for b in at.button if b.label == "Load and segment").click().run()
        except BaseException as err:  # surfaced below; a thread must not swallow it
            errors.append(err)

    def model_loads() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage().startswith("loading model")]

    # AppTest (not the app) resets a class-wide Streamlit flag, PagesManager.uses_pages_directory,
    # at the start of every run and reads it a moment later to register the pages/ folder; two
    # runs starting at the same instant can see each other's reset and lose their pages (seen once
    # on a loaded CPU). So the second session starts once the first is loading the model: both
    # still segment at the same time and share that one load.
    with caplog.at_level(logging.INFO, logger="neuroinsight.inference"):
        threads = [threading.Thread(target=run, args=(at,)) for at in sessions.values()]
        threads[0].start()
        # If the first run ends without loading (it failed), the checks below say why.
        while threads[0].is_alive() and not model_loads():
            time.sleep(0.2)
        threads[1].start()
        for t in threads:
            t.join(timeout=600)
    assert not errors
    for cid, at in sessions.items():
        assert not at.exception
        result = at.session_state["result"]
        assert result.case.case_id == cid  # each session holds its own case
        assert result.case.label is not None and result.scores is not None
    a, b = (sessions[c].session_state["result"] for c in ("ph2", "ph3"))
    assert a is not b and a.segmentation.labels is not b.segmentation.labels
    loads = model_loads()
    assert len(loads) == 1, f"the model was loaded {len(loads)} times"
    # Uploads went to a private temp folder that is gone after processing.
    tmp = home / "tmp"
    assert not tmp.exists() or not any(tmp.iterdir())


def test_streamlit_security_defaults_stay_on():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["enableXsrfProtection"] is True
    assert config["server"]["enableCORS"] is True


def test_no_raw_html_is_rendered():
    sources = [REPO / "app.py", *sorted((REPO / "pages").glob("*.py")), *sorted((REPO / "neuroinsight").glob("*.py"))]
    for path in sources:
        text = path.read_text()
        assert not re.search(r"unsafe_allow_html\s*=\s*True", text), path
        assert "st.html(" not in text and "components.html" not in text, path
