"""Every numbered notebook opened in JupyterLab in a real browser: one screenshot each.

Starts this environment's JupyterLab on localhost (random port and token; the project's kernel
``tem-lib`` is registered by ``./run_all.sh``), opens each ``notebooks/NN_*.ipynb`` in headless
Chromium (Debian's package, driven by Playwright without downloading a browser), waits until
the notebook has rendered its markdown and its kernel is idle, checks that the kernel is the
project's ("Python (tem-lib)") and that the first heading rendered, and saves
``benchmarks/results/jupyterlab/<notebook>.png`` plus ``jupyterlab_screens.{json,md}``.
Not part of the test suite (it needs a browser); run it by hand:

    apt-get install chromium                      # Debian's Chromium (/usr/bin/chromium)
    .venv/bin/pip install -e '.[lab,browser]'     # JupyterLab and Playwright (no browser download)
    .venv/bin/python benchmarks/jupyterlab_screens.py
"""
import argparse
import secrets
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from _lab import CHROMIUM_ARGS, free_port, kernel_idle, start_lab, stop_lab

from _common import RESULTS, ROOT, markdown_table, write_results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--timeout-s", type=float, default=120)
    args = ap.parse_args()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sys.exit("needs Playwright: .venv/bin/pip install -e '.[browser]'")
    if not Path(args.chromium).is_file():
        sys.exit(f"{args.chromium}: no Chromium; apt-get install chromium (or --chromium PATH)")
    out = RESULTS / "jupyterlab"
    out.mkdir(parents=True, exist_ok=True)
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    port, token = free_port(), secrets.token_hex(16)
    log = Path(tempfile.mkdtemp()) / "jupyterlab.log"  # not under results: it holds the token
    lab = start_lab(port, token, log, ROOT)
    rows = []
    t0 = time.perf_counter()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            for k, nb in enumerate(notebooks):
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                url = f"http://127.0.0.1:{port}/lab/workspaces/shot{k}/tree/notebooks/{nb.name}?reset&token={token}"
                t = time.perf_counter()
                page.goto(url)
                ms = int(args.timeout_s * 1000)
                h1 = page.wait_for_selector(".jp-NotebookPanel .jp-RenderedMarkdown h1", timeout=ms)
                kernel_idle(page, ms)
                kernel = page.inner_text(".jp-NotebookPanel .jp-Toolbar-kernelName")
                page.wait_for_timeout(1000)  # let the last cells lay out
                shot = out / f"{nb.stem}.png"
                page.screenshot(path=str(shot))
                rows.append({"notebook": nb.name, "kernel": kernel.strip(), "heading": h1.inner_text().strip()[:70],
                             "kernel_ok": kernel.strip() == "Python (tem-lib)", "seconds": round(time.perf_counter() - t, 1),
                             "screenshot": str(shot.relative_to(ROOT))})
                print(rows[-1])
                page.close()
            browser.close()
    finally:
        stop_lab(lab)
    table = pd.DataFrame(rows)
    notes = f"""
Each numbered notebook opened in JupyterLab ({sys.executable} -m jupyterlab, localhost) in headless Chromium
({args.chromium}) via Playwright; a notebook counts as opened when its first markdown heading has rendered and its kernel
is connected and idle (execution indicator and status bar). `kernel_ok`: the kernel picked from the notebook's
metadata is the project's. Screenshots: `benchmarks/results/jupyterlab/`. Wall time {time.perf_counter() - t0:.0f} s.
"""
    write_results("jupyterlab_screens", {"notebooks": rows}, table, notes)
    print(markdown_table(table))
    if not table["kernel_ok"].all():
        sys.exit("some notebooks did not open with the project's kernel")


if __name__ == "__main__":
    main()
