"""The Colab set-up cell: in every notebook, inert outside Colab, keeps Colab's torch."""
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

from tem_lib.running import colab

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))


def test_every_notebook_starts_with_the_cell():
    assert NOTEBOOKS
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        first = next(c for c in nb.cells if c.cell_type == "code")
        assert first.source == colab.CELL, f"{path.name}: run python -m tem_lib.running.colab --write-cells"


def test_cell_does_nothing_outside_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    ns = {}
    exec(compile(colab.CELL, "colab-cell", "exec"), ns)
    assert "repo_url" not in ns  # the Colab branch was not entered


def test_cell_on_colab_without_an_address_says_so(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.delenv("TEM_LIB_REPO", raising=False)
    cell = colab.CELL.replace(colab.CLONE_DIR, str(tmp_path / "absent"))
    with pytest.raises(RuntimeError, match="repository's git address"):
        exec(compile(cell, "colab-cell", "exec"), {})


def test_cell_on_colab_clones_installs_and_moves_to_the_checkout(monkeypatch, tmp_path):
    """The whole cell with a local clone as 'the repository' and pip replaced by a recorder."""
    src = tmp_path / "origin"
    subprocess.run(["git", "clone", "--quiet", "--depth", "1", f"file://{ROOT}", str(src)], check=True)
    clone = tmp_path / "content" / "tem_lib"
    calls = []
    real_run = subprocess.run

    def run(cmd, *a, **k):
        if cmd[:3] == [sys.executable, "-m", "pip"]:
            calls.append(cmd)
            return subprocess.CompletedProcess(cmd, 0)
        return real_run(cmd, *a, **k)

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setenv("TEM_LIB_REPO", f"file://{src}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    cell = colab.CELL.replace(colab.CLONE_DIR, str(clone))
    exec(compile(cell, "colab-cell", "exec"), {})
    assert (clone / "run_all.sh").is_file() and (clone / "tem_lib").is_dir()
    assert Path.cwd() == clone.resolve()
    (pip,) = calls
    assert pip[pip.index("-e") + 1] == str(clone.resolve())
    pins = Path(pip[pip.index("-c") + 1]).read_text()
    assert f"torch=={colab.installed_versions()['torch']}" in pins.splitlines()


def test_constraints_pin_what_colab_has():
    text = colab.constraints({"torch": "2.5.1+cu121", "numpy": "1.26.4"})
    assert text.splitlines() == ["numpy==1.26.4", "torch==2.5.1+cu121"]
    have = colab.installed_versions(("torch", "surely-not-installed-pkg"))
    assert set(have) == {"torch"}


def test_drive_storage_links_and_refuses_to_hide_results(tmp_path):
    repo, drive = tmp_path / "repo", tmp_path / "drive"
    (repo / "tem_lib").mkdir(parents=True)
    (repo / "figures").mkdir()
    (repo / "figures" / ".gitkeep").touch()
    links = colab.link_storage(repo, drive)
    assert [p.name for p in links] == ["runs", "figures"]
    (repo / "runs" / "x.txt").write_text("kept")
    assert (drive / "runs" / "x.txt").read_text() == "kept"
    assert colab.link_storage(repo, drive) == links  # idempotent
    other = tmp_path / "repo2"
    (other / "runs").mkdir(parents=True)
    (other / "runs" / "result.json").write_text("{}")
    with pytest.raises(FileExistsError, match="already holds results"):
        colab.link_storage(other, drive)
    assert (other / "runs" / "result.json").exists()


def test_setup_rejects_a_folder_that_is_not_a_checkout(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a tem_lib checkout"):
        colab.setup(tmp_path, install=False)


def test_write_cells_is_idempotent(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell("x = 1")])
    path = tmp_path / "01_t.ipynb"
    nbformat.write(nb, path)
    assert colab.write_cells([path]) == [path]
    assert colab.write_cells([path]) == []
    cells = nbformat.read(path, as_version=4).cells
    assert [c.cell_type for c in cells] == ["markdown", "code", "code"]
    assert cells[1].source == colab.CELL and cells[2].source == "x = 1"
