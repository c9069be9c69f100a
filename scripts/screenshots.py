"""Retake the documentation's screenshots (docs/img/*.png) from the outputs of `make demo`.

Starts an Airflow API server over the demo's Airflow home, an MLflow UI over its store and Evidently's UI over its
workspace, each on a loopback port of its own (18080, 15000 and 18002 by default, so as not to meet `make airflow-ui`,
`make mlflow-ui` or `make evidently-ui`), drives a headless
Chromium through the DevTools protocol (the Debian package `chromium`; no browser is downloaded), and stops what it
started. Airflow's simple auth manager runs with ``simple_auth_manager_all_admins`` for these pages only, so no
password is needed; nothing outside 127.0.0.1 is reached.

    make demo && make screenshots          # or: .venv/bin/python scripts/screenshots.py --only drift-report
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from websockets.sync.client import connect

from pipelines.config import load_config

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
IMG = REPO / "docs" / "img"
MODEL = "credit_default"
log = logging.getLogger("screenshots")


def _wait_http(url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status < 500:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _process(command: list[str], env: dict[str, str], logfile: Path) -> Iterator[subprocess.Popen]:
    """A child process in its own session, stopped (the whole group) on exit."""
    with logfile.open("w") as out:
        child = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield child
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, 15)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, 9)
                child.wait()


class Browser:
    """One headless Chromium tab driven over the DevTools protocol."""

    def __init__(self, port: int) -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as answer:
            page = next(t for t in json.load(answer) if t["type"] == "page")
        self.stack = contextlib.ExitStack()
        self.ws = self.stack.enter_context(connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30))
        self.next_id = 0

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=120))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")

    def open(self, url: str, width: int = 1440, height: int = 900, ready: str = "true", timeout: float = 90) -> None:
        """Load ``url`` and wait until the JavaScript expression ``ready`` holds (the page has rendered its data)."""
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        self.call("Page.navigate", url=url)
        self.wait(ready, timeout, url)

    def wait(self, ready: str, timeout: float = 90, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(f"document.readyState === 'complete' && !!({ready})"):
                time.sleep(1.5)  # let charts and transitions settle
                return
            time.sleep(0.5)
        raise SystemExit(f"{what or ready}: not ready within {timeout:.0f} s")

    def drag(self, x: float, y: float, to_x: float) -> None:
        """Press the mouse at (x, y), move it to (to_x, y) in steps, release: a real drag, as a person does it."""
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        self.call("Input.dispatchMouseEvent", type="mousePressed", x=x, y=y, button="left", clickCount=1)
        for step in range(1, 11):
            self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x + (to_x - x) * step / 10, y=y, buttons=1)
        self.call("Input.dispatchMouseEvent", type="mouseReleased", x=to_x, y=y, button="left", clickCount=1)

    def shot(self, name: str, full_page: bool = False) -> Path:
        params = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 3000), "scale": 1}
        path = IMG / f"{name}.png"
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", **params)["data"]))
        log.info("wrote %s", path.relative_to(REPO))
        return path


def _text_present(text: str) -> str:
    return f"document.body && document.body.innerText.includes({json.dumps(text)})"


def _click(text: str) -> str:
    """JS clicking the first button whose text is ``text``; true when one was found."""
    return (
        "(() => { const b = [...document.querySelectorAll('button')]"
        f".find(e => e.innerText.trim() === {json.dumps(text)}); if (b) b.click(); return !!b; }})()"
    )


def _close_assistant(browser: Browser) -> None:
    """Close MLflow's assistant side panel, which would take a third of the page."""
    if browser.evaluate(_click_label("Close")):
        time.sleep(1.5)


def _click_label(label: str) -> str:
    """JS clicking the button whose aria-label is ``label``; true when one was found."""
    return (
        f"(() => {{ const b = document.querySelector('button[aria-label={json.dumps(label)}]');"
        " if (b) b.click(); return !!b; })()"
    )


def _report(day: str) -> Path:
    reports = REPO / "data" / "lake" / MODEL / "reports" / f"date={day}"
    found = sorted(reports.glob("*.html"))
    if not found:
        raise SystemExit(f"no drift report in {reports}: run `make demo` first")
    return found[0]


def _evidently_project(evidently: str) -> str:
    """The id of the demo model's project in the Evidently UI (its API lists the workspace's projects)."""
    with urllib.request.urlopen(f"{evidently}/api/projects") as answer:
        projects = json.load(answer)
    found = [p["id"] for p in projects if p["name"] == MODEL]
    if not found:
        raise SystemExit(f"no Evidently project {MODEL!r} in the workspace: run `make demo` first")
    return found[0]


def take(browser: Browser, airflow: str, mlflow: str, evidently: str, only: set[str], report_day: str) -> list[Path]:
    shots: list[Path] = []

    def wanted(name: str) -> bool:
        return not only or name in only

    if wanted("airflow-dags"):
        browser.open(f"{airflow}/dags?tags=mlops", ready=_text_present(f"drift_monitoring__{MODEL}"))
        shots.append(browser.shot("airflow-dags"))
    if wanted("airflow-grid"):
        browser.open(
            f"{airflow}/dags/drift_monitoring__{MODEL}",
            width=1600,
            ready=_text_present("start_retraining"),
        )
        # widen the grid pane over the details pane (drag the splitter), so that more runs of the demo are columns
        edge = browser.evaluate(
            "(() => { const h = document.querySelector('[data-panel-resize-handle-id]');"
            " if (!h) return null; const r = h.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + 150]; })()"
        )
        if edge:
            browser.drag(edge[0], edge[1], edge[0] + 650)
        time.sleep(2)
        shots.append(browser.shot("airflow-grid"))
    if wanted("airflow-trigger"):
        browser.open(f"{airflow}/dags/drift_monitoring__{MODEL}", height=1150, ready=_click("Trigger"))
        browser.wait(_text_present("Force retraining"), what="the trigger form")
        browser.evaluate(
            "(() => { const d = [...document.querySelectorAll('[role=dialog] *')]"
            ".find(e => e.innerText && e.innerText.trim().startsWith('Run Parameters')); if (d) d.click(); })()"
        )
        time.sleep(1)
        shots.append(browser.shot("airflow-trigger"))
    if wanted("mlflow-registry"):
        # tall: each version row lists its decision tags, and all four versions with their aliases should show
        browser.open(f"{mlflow}/#/models/{MODEL}", width=1700, height=1500, ready=_text_present("previous_champion"))
        _close_assistant(browser)
        browser.evaluate(
            "(() => { const v = [...document.querySelectorAll('h1,h2,h3,h4,span,div')]"
            ".find(e => e.childElementCount === 0 && e.innerText.trim() === 'Versions');"
            " if (v) v.scrollIntoView(); })()"
        )
        time.sleep(1)
        shots.append(browser.shot("mlflow-registry"))
    if wanted("mlflow-version"):
        versions = json.load(
            urllib.request.urlopen(f"{mlflow}/api/2.0/mlflow/registered-models/alias?name={MODEL}&alias=champion")
        )
        version = versions["model_version"]["version"]
        browser.open(f"{mlflow}/#/models/{MODEL}/versions/{version}", ready=_text_present("Promoted on"))
        _close_assistant(browser)
        shots.append(browser.shot("mlflow-version"))
    if wanted("drift-report"):
        browser.open(_report(report_day).as_uri(), width=1400, height=1100, ready=_text_present("decision"))
        shots.append(browser.shot("drift-report"))
    if wanted("evidently-dashboard"):
        # ready once each of the three panels has its series loaded (a chart's legend is drawn with its data)
        panels = "document.querySelectorAll('.MuiChartsLegend-root').length"
        browser.open(
            f"{evidently}/projects/{_evidently_project(evidently)}",
            width=1600,
            height=1250,
            ready=f"{_text_present('Drift score per feature')} && {panels} >= 3",
        )
        shots.append(browser.shot("evidently-dashboard"))
    return shots


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--airflow-port", type=int, default=18080)
    parser.add_argument("--mlflow-port", type=int, default=15000)
    parser.add_argument("--evidently-port", type=int, default=18002)
    parser.add_argument("--report-day", default="2026-10-18", help="the day whose drift report is shown")
    parser.add_argument("--only", action="append", default=[], help="one screenshot by name (repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium not found: apt-get install chromium")
    home = REPO / ".airflow"
    if not (REPO / "mlruns.db").exists() or not home.is_dir():
        raise SystemExit("no demo outputs (mlruns.db, .airflow/): run `make demo` first")
    IMG.mkdir(parents=True, exist_ok=True)

    airflow = f"http://127.0.0.1:{args.airflow_port}"
    mlflow = f"http://127.0.0.1:{args.mlflow_port}"
    evidently = f"http://127.0.0.1:{args.evidently_port}"
    workspace = load_config(REPO / "include/config/demo.yaml").monitoring.evidently_workspace
    if not workspace or not Path(workspace).is_dir():
        raise SystemExit(f"no Evidently workspace ({workspace}): run `make demo` first")
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(args.airflow_port),
        "AIRFLOW__API__BASE_URL": airflow,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{airflow}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API_AUTH__JWT_SECRET": os.environ.get("AIRFLOW__API_AUTH__JWT_SECRET") or os.urandom(32).hex(),
        "AIRFLOW__API__SECRET_KEY": os.environ.get("AIRFLOW__API__SECRET_KEY") or os.urandom(32).hex(),
        "MLOPS_HOME": str(REPO),
        "MLFLOW_UI_URL": mlflow,
    }
    with tempfile.TemporaryDirectory(prefix="screenshots-") as tmp, contextlib.ExitStack() as stack:
        logs = Path(tmp)
        stack.enter_context(_process([str(BIN / "airflow"), "api-server", "--workers", "1"], env, logs / "api.log"))
        stack.enter_context(
            _process(
                [
                    str(BIN / "mlflow"),
                    "ui",
                    "--backend-store-uri",
                    f"sqlite:///{REPO / 'mlruns.db'}",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(args.mlflow_port),
                    "--allowed-hosts",
                    f"127.0.0.1:{args.mlflow_port},localhost:{args.mlflow_port}",
                ],
                env,
                logs / "mlflow.log",
            )
        )
        stack.enter_context(
            _process(
                [
                    str(BIN / "evidently"),
                    "ui",
                    "--workspace",
                    workspace,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(args.evidently_port),
                ],
                {**env, "DO_NOT_TRACK": "1"},  # Evidently's usage telemetry off
                logs / "evidently.log",
            )
        )
        devtools = _free_port()
        stack.enter_context(
            _process(
                [
                    chromium,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--hide-scrollbars",
                    "--no-first-run",
                    "--allow-file-access-from-files",
                    f"--user-data-dir={logs / 'chromium'}",
                    "--remote-debugging-address=127.0.0.1",
                    f"--remote-debugging-port={devtools}",
                    "about:blank",
                ],
                env,
                logs / "chromium.log",
            )
        )
        try:
            _wait_http(f"{airflow}/api/v2/monitor/health")
            _wait_http(f"{mlflow}/health")
            _wait_http(f"{evidently}/api/version")
            _wait_http(f"http://127.0.0.1:{devtools}/json/version", timeout=60)
            shots = take(Browser(devtools), airflow, mlflow, evidently, set(args.only), args.report_day)
        except BaseException:
            for name in ("api.log", "mlflow.log", "evidently.log", "chromium.log"):
                tail = (logs / name).read_text().splitlines()[-15:]
                print(f"--- {name}\n" + "\n".join(tail), file=sys.stderr)
            raise
    print(f"{len(shots)} screenshot(s) in {IMG.relative_to(REPO)}/")


if __name__ == "__main__":
    main()
