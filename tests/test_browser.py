"""End to end in a real browser: Debian's chromium driven by Playwright against `streamlit run app.py`."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from neuroinsight import history
from neuroinsight.config import resolve_settings
from tests.conftest import DATA_DIR, REPO, requires_real_data

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (apt-get install chromium)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server_home(tmp_path_factory) -> Path:
    """The app server's NEUROINSIGHT_HOME (its history database lives there)."""
    return tmp_path_factory.mktemp("browser-home")


@pytest.fixture(scope="module")
def server(tmp_path_factory, server_home):
    port = _free_port()
    env = {**os.environ, "NEUROINSIGHT_HOME": str(server_home)}
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app.py",
                "--server.headless",
                "true",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"streamlit did not start:\n{log.read_text()[-3000:]}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


def _settle(page, timeout_ms: int = 120_000) -> None:
    """Wait until Streamlit has finished running the script."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout_ms)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)


def _open(page, name: str) -> None:
    """Navigate in the sidebar: a full page load would start a new session and lose the case."""
    page.locator("[data-testid='stSidebar'] a", has_text=name).first.click()
    page.wait_for_url(re.compile(rf"/{name}(\?.*)?$"), timeout=60_000)  # ?case=... once a case is loaded
    _settle(page)


def _chart_image(page, timeout_s: float = 60) -> bytes:
    """A screenshot of the first chart, once two captures half a second apart agree.

    After a rerun Streamlit may replace the chart element between locating and capturing it
    ("Element is not attached to the DOM"), and Plotly draws the new slice a moment after the
    element appears; waiting for a stable capture compares what the app settled on.
    """
    from playwright.sync_api import Error as PlaywrightError

    deadline = time.time() + timeout_s
    previous = None
    while time.time() < deadline:
        try:
            image = page.locator("[data-testid='stPlotlyChart']").first.screenshot(timeout=timeout_s * 1000)
        except PlaywrightError as error:
            if "not attached" not in str(error):
                raise
            image = None
        if image is not None and image == previous:
            return image
        previous = image
        page.wait_for_timeout(500)
    pytest.fail(f"the chart did not settle within {timeout_s} s")


def _no_exception(page) -> None:
    assert page.locator("[data-testid='stException']").count() == 0, page.locator(
        "[data-testid='stException']"
    ).first.inner_text()


def test_demo_case_through_every_page(server, browser, tmp_path):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    # Hospital networks are often offline: nothing the app shows may come from another host
    # (a Material page icon, for one, makes the browser fetch the tab icon from fonts.gstatic.com).
    elsewhere: list[str] = []
    page.on("request", lambda r: urlparse(r.url).hostname in (None, "127.0.0.1") or elsewhere.append(r.url))
    page.goto(server)
    _settle(page)
    page.get_by_text("Brain-tumor segmentation on multi-modal MRI").wait_for()
    page.get_by_text("Recent analyses").wait_for(timeout=60_000)
    page.get_by_text("Try the built-in demo case").wait_for(timeout=60_000)
    _no_exception(page)
    # Our menu, not Streamlit's, which would call the home page "app" after its file name.
    assert page.locator("[data-testid='stSidebarNav']").count() == 0
    menu = page.locator("[data-testid='stSidebar'] a").all_inner_texts()
    assert [text.split()[-1] for text in menu] == ["Home", "Upload", "Viewer", "Metrics", "Report", "Learn", "About"]
    page.screenshot(path=shots / "home.png", full_page=True)

    # The Home page's link opens the Upload page on its Demo tab: the button is there without a tab click.
    page.get_by_role("link", name="Try the built-in demo case").click()
    page.wait_for_url("**/Upload?tab=demo", timeout=60_000)
    _settle(page)
    page.get_by_role("button", name="Load the demo case").click(timeout=30_000)
    page.get_by_text("Segmented the demo case").wait_for(timeout=240_000)
    # The case summary under the tabs (volumes, grade) is the last part of the page to render.
    page.get_by_text("Probability of high-grade glioma").wait_for(timeout=60_000)
    _no_exception(page)
    page.screenshot(path=shots / "upload.png", full_page=True)

    _open(page, "Viewer")
    before = _chart_image(page)
    slider = page.get_by_role("slider").last
    slider.focus()
    for _ in range(12):
        page.keyboard.press("ArrowRight")
    page.wait_for_timeout(1500)
    _settle(page)
    after = _chart_image(page)
    assert before != after, "the displayed slice did not change after moving the slider"
    _no_exception(page)
    page.screenshot(path=shots / "viewer.png", full_page=True)

    # A reload starts a new session; the case comes back from the URL instead of being lost.
    assert "case=" in page.url
    page.reload()
    _settle(page)
    _chart_image(page)
    assert page.get_by_text("No case is loaded").count() == 0
    _no_exception(page)

    _open(page, "Report")
    with page.expect_download(timeout=120_000) as download_info:
        page.get_by_role("button", name="Download the PDF report").click()
    pdf = Path(download_info.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
    # The page previews (poppler's pdftoppm, installed by .ci/run) are still shown after the download.
    page.get_by_text("page 1", exact=True).wait_for(timeout=60_000)
    _no_exception(page)
    page.screenshot(path=shots / "report.png", full_page=True)

    for name, marker in (
        # The last figure of the page, which the demo case (it has ground truth) must reach.
        ("Metrics", "Label confusion (voxels; rows = ground truth)"),
        ("Learn", "How the shipped model was trained"),
        ("About", "How to cite"),
    ):
        _open(page, name)
        page.get_by_text(marker).wait_for(timeout=120_000)
        if name == "Metrics":
            # Plotly draws a moment after the element appears; the confusion heat map's axis
            # title shows it was drawn, not only laid out.
            page.wait_for_function(
                "() => [...document.querySelectorAll('.xtitle')].some(e => e.textContent === 'predicted')",
                timeout=60_000,
            )
        _no_exception(page)
        page.screenshot(path=shots / f"{name.lower()}.png", full_page=True)
    # One Back leaves a page: the links carry ?case=, so a move is one browser-history entry, not two.
    page.go_back()
    page.wait_for_url(re.compile(r"/Learn\?case="), timeout=60_000)
    _settle(page)
    page.get_by_text("How the shipped model was trained").wait_for(timeout=120_000)
    assert len(list(shots.glob("*.png"))) == 7

    # A point clicked on the per-slice Dice opens that axial slice in the Viewer.
    _open(page, "Metrics")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.xtitle')].some(e => e.textContent === 'axial slice')", timeout=60_000
    )
    point = page.evaluate(
        """() => {
            const gd = [...document.querySelectorAll('.js-plotly-plot')]
                .find(g => g.layout.xaxis.title && g.layout.xaxis.title.text === 'axial slice');
            // Plotly keeps the decoded numbers (the figure sends them base64-packed) in _fullData.
            const wt = Array.from(gd._fullData[0].y, v => (Number.isFinite(v) ? v : -1));
            const z = wt.indexOf(Math.max(...wt));
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
            return {z, x: box.left + xa._offset + xa.l2p(z), y: box.top + ya._offset + ya.l2p(wt[z])};
        }"""
    )
    page.mouse.move(point["x"], point["y"])
    page.mouse.click(point["x"], point["y"])
    page.wait_for_url(re.compile(r"/Viewer\?case="), timeout=60_000)
    _settle(page)
    page.get_by_text(f"prediction · FLAIR axial {point['z']}", exact=True).wait_for(timeout=60_000)
    _no_exception(page)
    assert not elsewhere, f"requests to other hosts: {elsewhere}"


def _choose_files(page, uploader: int, files: list[Path], total: int | None = None) -> None:
    """Add files to a file uploader; wait until it lists ``total`` (default: these) and each is sent."""
    total = total or len(files)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").nth(uploader).set_input_files(files)
    chips = page.locator("[data-testid='stFileUploader']").nth(uploader).locator("[data-testid='stFileChip']")
    page.wait_for_function(
        "([uploader, n]) => { const u = document.querySelectorAll(\"[data-testid='stFileUploader']\")[uploader];"
        " return u.querySelectorAll(\"[data-testid='stFileChip']\").length === n &&"
        " !u.querySelector(\"[data-testid='stFileChipIconSpinner']\"); }",
        arg=[uploader, total],
        timeout=60_000,
    )
    assert chips.count() == total


@requires_real_data
def test_real_patient_uploaded_through_the_file_picker(server, server_home, browser, tmp_path):
    """The main path of a user: NIfTI files from disk, first an incomplete set, then a scan without
    contrast (T1, T2, FLAIR), then the whole case."""
    case_dir = DATA_DIR / "Brats18_CBICA_AQN_1"
    scans = {m: case_dir / f"Brats18_CBICA_AQN_1_{m}.nii.gz" for m in ("flair", "t1", "t2", "t1ce")}
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server)
    _settle(page)
    _open(page, "Upload")
    page.locator("[data-testid='stFileUploaderDropzoneInput']").nth(1).wait_for(state="attached", timeout=60_000)
    current = page.locator("p", has_text="Current case Brats18_CBICA_AQN_1")
    # The drop zone states the limit in its own rounding (512 MB read "1GB"); the page's sentence must agree.
    stated = page.locator("[data-testid='stMarkdownContainer']", has_text="per file.").first.inner_text()
    number, unit = re.search(r"Limit (\d+) ([GM]B) per file", stated).groups()
    for hint in page.locator("[data-testid='stFileUploaderDropzoneInstructions']").all_inner_texts():
        assert f"{number}{unit} per file" in hint, (stated, hint)

    _choose_files(page, 0, [scans["flair"]])
    page.get_by_role("button", name="Load and segment").click()
    page.get_by_text("Missing T1CE").wait_for(timeout=60_000)
    page.get_by_text("Without contrast, T1 + T2 + FLAIR give the whole tumor only").wait_for(timeout=10_000)
    _no_exception(page)

    # As a user would: add files to those already chosen. T1 and T2 make a scan without contrast.
    _choose_files(page, 0, [scans["t1"], scans["t2"]], total=3)
    page.get_by_role("button", name="Load and segment").click()
    current.filter(has_text="attention_unet_nocontrast.keras").wait_for(timeout=300_000)
    _settle(page)
    _no_exception(page)
    page.get_by_text("No T1ce (contrast-enhanced T1) was given").wait_for(timeout=10_000)
    metric_labels = page.locator("[data-testid='stMetricLabel']")
    metric_labels.nth(4).wait_for(timeout=10_000)  # the five volumes are drawn one by one
    labels = metric_labels.all_inner_texts()
    expected = [f"{r} (cm³)" + ("" if r == "WT" else " · unreliable") for r in ("NCR", "ED", "ET", "WT", "TC")]
    assert labels[:5] == expected, labels
    assert page.get_by_text("Probability of high-grade glioma").count() == 0
    latest = history.list_runs(resolve_settings(home=server_home).db_path, limit=1)[0]  # the demo test may come first
    assert (latest.case_id, latest.model) == ("Brats18_CBICA_AQN_1", "attention_unet_nocontrast.keras")
    assert set(latest.volumes_ml) == {"WT"} and latest.hgg_probability is None
    assert latest.seen_in_training == "training"  # a shared case: every shipped model trained on it
    page.screenshot(path=tmp_path / "upload_no_contrast.png", full_page=True)

    _choose_files(page, 0, [scans["t1ce"]], total=4)
    _choose_files(page, 1, [case_dir / "Brats18_CBICA_AQN_1_seg.nii.gz"])
    page.get_by_role("button", name="Load and segment").click()
    # All four modalities: the four-modality model ran, and the page says so.
    current.filter(has_text="attention_unet_4mod.keras").wait_for(timeout=300_000)
    _settle(page)
    _no_exception(page)
    assert page.get_by_text("No T1ce (contrast-enhanced T1) was given").count() == 0
    page.screenshot(path=tmp_path / "upload_real.png", full_page=True)

    _open(page, "Metrics")
    page.get_by_text("was one of this model's training patients").wait_for(timeout=60_000)
    cells = page.locator("[data-testid='stDataFrame']").nth(1)
    cells.wait_for(timeout=60_000)
    _no_exception(page)
