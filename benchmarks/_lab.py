"""JupyterLab on localhost driven by Playwright in Debian's Chromium (no browser download):
shared by benchmarks/jupyterlab_screens.py, benchmarks/label_widget_speed.py and the browser
test of the labelling widget (tests/test_label_browser.py)."""
from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
IDLE = "| Idle"  # JupyterLab's status bar, kernel connected and idle
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def missing() -> str | None:
    """Why the browser machinery cannot run here (None: it can)."""
    for mod, how in (("jupyterlab", "pip install -r requirements-browser.txt"),
                     ("playwright", "pip install -r requirements-browser.txt")):
        try:
            __import__(mod)
        except ImportError:
            return f"no {mod} ({how})"
    if not Path(CHROMIUM).is_file():
        return f"no {CHROMIUM} (apt-get install chromium)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(port: int, token: str, log: Path, root: Path) -> subprocess.Popen:
    """JupyterLab serving ``root``, with user settings and workspaces of its own beside ``log``
    (the same fresh state whatever the user's HOME holds; no news toast)."""
    user = log.parent / "lab-user"
    news = user / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True, exist_ok=True)
    news.write_text('{"fetchNews": "false", "checkForUpdates": false}')
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.news_url=",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           f"--LabApp.user_settings_dir={user / 'settings'}", f"--LabApp.workspaces_dir={user / 'workspaces'}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers, CI
        cmd.append("--allow-root")
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=root)
    for _ in range(120):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited (code {proc.returncode}); its log: {log}") from None
            time.sleep(1)
    proc.kill()
    raise RuntimeError(f"JupyterLab did not answer on port {port} within 2 min; its log: {log}")


def stop_lab(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def write_notebook(src: Path, dst: Path, parameters: dict, kernel: str = "python3") -> Path:
    """``src`` with ``parameters`` set in a cell after its ``parameters`` cell (as papermill
    injects them; not executed), its kernel set to ``kernel`` (the server's own Python)."""
    import nbformat
    nb = _read(src)
    k = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    cell = nbformat.v4.new_code_cell("\n".join(f"{name} = {value!r}" for name, value in parameters.items()))
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(k + 1, cell)
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, dst)
    return dst


def _read(path: Path):
    import nbformat
    return nbformat.read(path, as_version=4)


@contextmanager
def lab_page(root: Path, notebook: str, log_dir: Path, viewport=(1400, 1000), timeout_s: float = 180):
    """A Chromium page with ``notebook`` (a path under ``root``) open in JupyterLab and its
    kernel started; JupyterLab and the browser are stopped on exit."""
    from playwright.sync_api import sync_playwright
    port, token = free_port(), secrets.token_hex(16)
    lab = start_lab(port, token, log_dir / "jupyterlab.log", root)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.set_default_timeout(int(timeout_s * 1000))
            page.goto(f"http://127.0.0.1:{port}/lab/workspaces/t{port}/tree/{notebook}?reset&token={token}")
            kernel_idle(page)
            try:
                yield page
            except Exception as e:  # say what the notebook and the server showed
                e.add_note(diagnose(page, log_dir / "jupyterlab.log"))
                raise
            finally:
                browser.close()
    finally:
        stop_lab(lab)


def diagnose(page, log: Path, tail: int = 40) -> str:
    """What a failed browser run leaves to read: the notebook's error outputs and kernel state
    as JupyterLab shows them, and the last lines of JupyterLab's log."""
    lines = []
    try:
        lines.append("kernel: " + (page.get_attribute(".jp-Notebook-ExecutionIndicator", "data-status", timeout=2000)
                                   or "?"))
        errors = page.eval_on_selector_all(
            ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
            "els => els.map(e => e.innerText.slice(-2000))")
        lines += ["notebook output on stderr:", *errors] if errors else ["no output on stderr in the notebook"]
    except Exception as e:  # the page itself may be gone
        lines.append(f"the page could not be read: {e}")
    if log.is_file():
        lines += [f"last {tail} lines of {log}:", *log.read_text(errors="replace").splitlines()[-tail:]]
    return "\n".join(lines)


def kernel_idle(page, timeout_ms: float | None = None) -> None:
    """Wait until the open notebook's kernel is connected and idle. The toolbar's execution
    indicator says idle before the kernel is connected (a Run All Cells clicked then ran no cell:
    CI, with a fresh HOME); JupyterLab's status bar says when it is."""
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=timeout_ms)
    page.wait_for_function(f"document.querySelector('#jp-main-statusbar')?.innerText.includes('{IDLE}')",
                           timeout=timeout_ms)


def run_all_cells(page, tries: int = 3, started_s: float = 20) -> None:
    """JupyterLab's menu Run > Run All Cells, clicked as a person would, until a cell runs: a
    click while the freshly opened notebook is still settling can be lost (seen with a new
    HOME: the kernel idle, no cell run)."""
    started = ("[...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]"
               ".some(e => /\\[(\\*|\\d+)\\]/.test(e.textContent))")
    for _ in range(tries):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            page.wait_for_function(started, timeout=started_s * 1000)
            return
        except Exception:  # playwright's TimeoutError: click again
            page.keyboard.press("Escape")
    raise RuntimeError(f"Run All Cells clicked {tries} times; no cell started")
