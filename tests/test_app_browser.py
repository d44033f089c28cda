"""App mode in a real (headless) Chromium: ``workbench app doctor`` and ``workbench app tradeoffs``.

Both commands run as real processes, as a user starts them (``--no-browser``), with every Jupyter
folder and the workspace in a temporary folder; the test reads the URL each one prints (with its
token) and checks what a student sees:

- the server listens on 127.0.0.1 only and refuses a request without the token;
- the page loads with no widget or renderer error, and no long work ran on load (no result yet);
- the doctor: pick a teaching case and a small evaluation set, press "Run the doctor": the
  summary names the case's known culprit, and every tab's plotly figures draw (SVG, non-empty);
- the tradeoffs: press "Measure variants" on digits_cnn: the clickable plot draws, a click on a
  point selects that variant (details pane), the Precision filter leaves only INT8 variants;
- Ctrl-C (SIGINT to the command's process group, as a terminal sends it) stops the command.

Screenshots go to ``test-artifacts/browser/app-*.png``.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest
from browser_support import (
    ARTIFACT_DIR,
    REPO_ROOT,
    chromium_path,
    free_port,
    launch_chromium,
    playwright_sync_api,
)
from test_browser import FIGURES_JS, VARIANT_POINTS_JS

from workbench.doctor import teaching_case

sync_api = playwright_sync_api()

START_TIMEOUT_S = 180  # the command prints its URL and Voilà answers
LOAD_TIMEOUT_S = 150  # Voilà starts a kernel and runs the app's notebook
WORK_TIMEOUT_S = 240  # the doctor's run, the sweep of one sample model
UPDATE_TIMEOUT_S = 60
URL_RE = re.compile(r"http://127\.0\.0\.1:(\d+)/\?token=(\S+)")
TEACHING_CASE = "digits_cnn_conv1_c5_x300"

# What a user would read as an error on a Voilà page.
PROBLEMS_JS = """() => {
  const out = [];
  for (const el of document.querySelectorAll('.jp-OutputArea-output, .jupyter-widgets')) {
    const text = el.textContent || '';
    if (/Error displaying widget/.test(text)) out.push('widget error: ' + text.slice(0, 300));
    if (/Javascript Error|Error rendering output|No renderer could be found/i.test(text))
      out.push('renderer error: ' + text.slice(0, 300));
    if (/Traceback|There was an error when executing cell/.test(text)) out.push('error output: ' + text.slice(0, 1500));
  }
  for (const el of document.querySelectorAll('.wb-error'))
    if (el.getClientRects().length) out.push('workbench error box: ' + el.textContent.trim().slice(0, 500));
  if ([...document.querySelectorAll('.jupyter-widgets')].some(e => /Loading widget/.test(e.textContent || '')))
    out.push('a widget still shows "Loading widget..."');
  return [...new Set(out)];
}"""


# The height of the page's content: the document's, or that of the box that scrolls it.
SCROLL_HEIGHT_JS = """() => Math.max(document.documentElement.scrollHeight,
  ...[...document.querySelectorAll('body *')]
    .filter(e => e.scrollHeight > e.clientHeight + 5 && /auto|scroll/.test(getComputedStyle(e).overflowY))
    .map(e => e.scrollHeight + e.getBoundingClientRect().top))"""


@dataclass
class App:
    name: str
    process: subprocess.Popen
    log_path: Path
    url: str = ""
    port: int = 0
    token: str = ""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig=signal.SIGINT, timeout: float = 60) -> int | None:
        """Ctrl-C as a terminal sends it: SIGINT to the command's process group (it started one)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        return self.process.returncode


def start_app(name: str, tmp: Path) -> App:
    """``workbench app NAME --no-browser`` with its Jupyter state and workspace in ``tmp``."""
    dirs = {key: tmp / key for key in ("runtime", "config", "data", "ipython", "workspace")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(dirs["runtime"]), JUPYTER_CONFIG_DIR=str(dirs["config"]),
               JUPYTER_DATA_DIR=str(dirs["data"]), IPYTHONDIR=str(dirs["ipython"]),
               WORKBENCH_WORKSPACE=str(dirs["workspace"]), PYTHONUNBUFFERED="1")
    for key in ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH", "WORKBENCH_LAB_TOKEN"):
        env.pop(key, None)
    log_path = tmp / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "app", name, "--no-browser", "--port", str(free_port())],
            env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return App(name, process, log_path)


def wait_ready(app: App) -> None:
    """Wait for the URL the command prints, then for Voilà to say it runs and take connections.

    Not a GET of the page: Voilà runs the notebook in a new kernel for every page request.
    """
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if app.process.poll() is not None:
            raise AssertionError(f"workbench app {app.name} exited ({app.process.returncode}):\n{app.log()[-3000:]}")
        log = app.log()
        found = URL_RE.search(log)
        if found and "Voilà is running at" in log:
            app.url, app.port, app.token = found.group(0), int(found.group(1)), found.group(2)
            try:
                with socket.create_connection(("127.0.0.1", app.port), timeout=2):
                    return
            except OSError:
                pass
        time.sleep(0.5)
    raise AssertionError(f"workbench app {app.name} did not answer within {START_TIMEOUT_S} s:\n{app.log()[-3000:]}")


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    """Both apps started at once (they start in parallel), stopped by their process groups afterwards."""
    if chromium_path() is None:
        pytest.fail("Chromium is missing: run `bash tests/browser_setup.sh` (make test does)")
    started = {name: start_app(name, tmp_path_factory.mktemp(f"app-{name}")) for name in ("doctor", "tradeoffs")}
    try:
        for app in started.values():
            wait_ready(app)
        yield started
    finally:
        for app in started.values():
            app.stop(signal.SIGTERM)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with sync_api.sync_playwright() as playwright:
        context = launch_chromium(playwright, tmp_path_factory.mktemp("chromium-app-profile"))
        try:
            yield context
        finally:
            context.close()


def listening_addresses(port: int) -> list[str]:
    """The local addresses of every listening TCP socket on ``port`` (IPv4 and IPv6), from /proc."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.append(address)
    return found


def request(port: int, path: str, token: str | None = None) -> tuple[int, str]:
    """GET without following redirects: (status, Location header)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers={"Authorization": f"token {token}"} if token else {})
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("Location") or ""
    finally:
        connection.close()


def test_apps_listen_on_loopback_only_and_need_the_token(apps):
    for app in apps.values():
        assert listening_addresses(app.port) == ["0100007F"], (  # 127.0.0.1, little-endian hex; nothing on IPv6
            f"{app.name}: listening on {listening_addresses(app.port)}, expected 127.0.0.1 only")
        wrong = "/?" + urllib.parse.urlencode({"token": app.token[::-1]})
        for path in ("/", wrong, "/api/kernels", "/voila/render/doctor.ipynb"):
            status, location = request(app.port, path)
            assert status in (401, 403) or (status == 302 and "/login" in location), (
                f"{app.name}: GET {path} without the right token answered {status} {location}")
    # The right token opens the page: the two tests below (a GET of the page runs the notebook in a kernel).


class AppPage:
    """One app open in Chromium, with what the page logged."""

    def __init__(self, browser, app: App):
        self.app = app
        self.page = browser.new_page()
        self.log: list[str] = []
        self.page.on("console", lambda m: self.log.append(f"console {m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.log.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.log.append(f"request failed: {r.url[:200]} {r.failure}"))

    def open(self, button: str) -> None:
        self.page.goto(self.app.url, timeout=LOAD_TIMEOUT_S * 1000)  # Voilà answers once the notebook ran
        self.page.wait_for_selector(f"button:has-text('{button}')", timeout=LOAD_TIMEOUT_S * 1000)
        self.settle()

    def settle(self) -> None:
        try:
            self.page.wait_for_function(
                f"() => ({FIGURES_JS})(document).every(f => f.svgs > 0 && (!f.visible || f.drawn > 0))",
                timeout=30_000, polling=250)
        except sync_api.TimeoutError:
            pass  # the assertions that follow say what is wrong
        self.page.wait_for_timeout(300)

    def problems(self) -> list[str]:
        """Errors on the page, uncaught script errors, and console errors (a front-end extension
        that failed to load) other than resources fetched from the internet, which is closed here."""
        logged = [line for line in self.log if line.startswith("page error")
                  or (line.startswith("console error") and "Failed to load resource" not in line)]
        return self.page.evaluate(PROBLEMS_JS) + logged

    def figures(self, root=None) -> list[dict]:
        return (root or self.page.locator("body")).element_handle().evaluate(FIGURES_JS)

    def select(self, label: str, option: str) -> None:
        dropdown = self.page.locator(".widget-dropdown").filter(
            has=self.page.locator("label.widget-label", has_text=re.compile(f"^{re.escape(label)}$"))).first
        select = dropdown.locator("select")
        options = [o.replace("\xa0", " ") for o in select.locator("option").all_text_contents()]
        matches = [i for i, text in enumerate(options) if text.startswith(option)]
        assert matches, f"{self.app.name}: the {label} dropdown offers {options}, not {option!r}"
        select.select_option(index=matches[0])

    def screenshot(self, name: str) -> Path:
        """The whole page: the viewport grown to the content's height (Voilà scrolls inside the page)."""
        ARTIFACT_DIR.mkdir(parents=True, exist_ok=True)
        target = ARTIFACT_DIR / f"app-{self.app.name}-{name}.png"
        self.page.mouse.move(0, 0)  # no hover label over the figure
        height = self.page.evaluate(SCROLL_HEIGHT_JS)
        size = self.page.viewport_size
        self.page.set_viewport_size({"width": size["width"], "height": int(min(max(height, 600), 12000))})
        self.page.wait_for_timeout(500)  # plotly redraws on resize
        self.page.screenshot(path=str(target), full_page=True)
        self.page.set_viewport_size(size)
        return target


def assert_drew(app: str, figures: list[dict], where: str) -> None:
    """Every figure drew SVG with data; visible ones are readable and show marks."""
    assert figures, f"{app}: no plotly figure {where}"
    for index, fig in enumerate(figures):
        label = f"{app}: figure {index} ({fig['title'] or 'untitled'!r}) {where}"
        assert fig["svgs"] > 0 and fig["data"] > 0 and fig["traces"] > 0, f"{label}: empty: {fig}"
        if fig["visible"]:
            assert fig["width"] >= 200 and fig["height"] >= 150, f"{label}: too small to read: {fig}"
            assert fig["drawn"] > 0, f"{label}: nothing drawn: {fig}"


def test_doctor_app_runs_from_its_button(apps, browser):
    view = AppPage(browser, apps["doctor"])
    try:
        view.open("Run the doctor")
        assert view.problems() == [], "doctor app: errors on load:\n" + "\n".join(view.problems())
        assert view.figures() == [], "doctor app: figures on page load: the doctor ran before the button"
        assert view.page.locator(".lm-TabBar-tab").count() == 0
        view.screenshot("loaded")

        view.select("Model", f"{TEACHING_CASE} (teaching case)")
        view.select("Evaluation samples", "120")
        view.page.locator("button", has_text="Run the doctor").click()
        view.page.wait_for_selector(".lm-TabBar-tab", timeout=WORK_TIMEOUT_S * 1000)
        case = teaching_case(TEACHING_CASE)
        summary = view.page.locator(".jupyter-widget-tab, .widget-tab").first.text_content() or ""
        assert "culprits:" in summary and case.consumer in summary, (
            f"doctor app: the summary does not name the known culprit {case.consumer}: {summary[:800]}")
        view.settle()
        view.screenshot("result")

        tabs = view.page.locator(".lm-TabBar-tab")
        drawn = 0
        for index in range(tabs.count()):
            title = (tabs.nth(index).text_content() or "").strip()
            tabs.nth(index).click()
            view.settle()
            visible = [f for f in view.figures() if f["visible"]]
            if title != "Summary":
                assert_drew("doctor app", visible, f"in tab {title!r}")
            drawn += len(visible)
            if title in ("Ranges", "Sensitivity"):
                view.screenshot(title.lower())
        assert drawn >= 5, f"doctor app: {drawn} figures drew across the tabs"
        assert view.problems() == [], "doctor app: errors after the run:\n" + "\n".join(view.problems())
    except Exception:
        view.page.screenshot(path=str(ARTIFACT_DIR / "app-doctor-failure.png"))
        raise
    finally:
        (ARTIFACT_DIR / "app-doctor-page.log").write_text("\n".join(view.log) + "\n")
        view.page.close()


def test_tradeoffs_app_measures_then_selects_a_point(apps, browser):
    view = AppPage(browser, apps["tradeoffs"])
    page = view.page
    try:
        view.open("Measure variants")
        assert view.problems() == [], "tradeoffs app: errors on load:\n" + "\n".join(view.problems())
        assert "No results yet" in (page.locator("body").text_content() or ""), (
            "tradeoffs app: an empty workspace should say there are no results yet")
        view.screenshot("loaded")

        view.select("Measure", "digits_cnn")
        page.locator("button", has_text="Measure variants").click()
        page.wait_for_function("() => /\\d+ results in/.test(document.body.textContent)",
                               timeout=WORK_TIMEOUT_S * 1000, polling=500)
        view.settle()
        assert_drew("tradeoffs app", [f for f in view.figures() if f["visible"]], "after measuring")
        points = page.locator("body").element_handle().evaluate(VARIANT_POINTS_JS)
        assert len(points) >= 5, f"tradeoffs app: {len(points)} clickable variant points after measuring"

        target = points[-1]  # drawn last: on top of any point it overlaps
        page.mouse.move(target["x"], target["y"])
        page.wait_for_timeout(300)
        page.mouse.click(target["x"], target["y"])
        page.wait_for_function(
            "(id) => { const d = document.querySelector('.wb-tradeoff-details'); return !!d && d.textContent.includes(id); }",
            arg=target["id"], timeout=UPDATE_TIMEOUT_S * 1000)
        view.screenshot("selected")

        view.select("Precision", "INT8")
        page.wait_for_function(
            """() => { const s = [...document.querySelectorAll('.widget-dropdown')]
                 .find(d => /^Variant$/.test((d.querySelector('label') || {}).textContent || ''));
               const opts = s ? [...s.querySelectorAll('option')].map(o => o.textContent).filter(t => t !== '–') : [];
               return opts.length > 0 && opts.every(t => /INT8/i.test(t)); }""",
            timeout=UPDATE_TIMEOUT_S * 1000)
        view.settle()
        assert_drew("tradeoffs app", [f for f in view.figures() if f["visible"]], "filtered to INT8")
        assert view.problems() == [], "tradeoffs app: errors after the clicks:\n" + "\n".join(view.problems())
        view.screenshot("int8")
    except Exception:
        page.screenshot(path=str(ARTIFACT_DIR / "app-tradeoffs-failure.png"))
        raise
    finally:
        (ARTIFACT_DIR / "app-tradeoffs-page.log").write_text("\n".join(view.log) + "\n")
        page.close()


def test_ctrl_c_stops_the_app(apps):
    app = apps["doctor"]
    code = app.stop(signal.SIGINT)
    assert code == 0, f"workbench app doctor exited {code} on Ctrl-C:\n{app.log()[-2000:]}"
    assert listening_addresses(app.port) == [], "the Voilà server still listens after Ctrl-C"
