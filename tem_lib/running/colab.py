"""Running the notebooks on Google Colab.

Every numbered notebook starts with the same cell (:data:`CELL`): on Colab it clones this
repository, installs ``tem_lib`` **without replacing Colab's own torch, torchvision, torchaudio or
numpy** (they are pinned to the versions Colab has, through a pip constraints file), moves to the
repository root so the notebooks' relative paths resolve as they do locally, and, if asked, keeps
``runs/`` and ``figures/`` on a mounted Google Drive so that a disconnected runtime loses nothing.
Everywhere else the cell does nothing.

The cell is written into the notebooks by ``python -m tem_lib.running.colab --write-cells`` (the tests
check that every notebook carries it unchanged).
"""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

from ..utils import atomic_path

#: Packages Colab ships and that must stay as they are: replacing torch there pulls several GB
#: and breaks its CUDA build; replacing numpy breaks packages compiled against it.
KEEP = ("torch", "torchvision", "torchaudio", "numpy")

#: Where the cell clones the repository on Colab.
CLONE_DIR = "/content/tem_lib"

#: The repository's public address; the cell's default. Empty until the project has one: then the
#: cell stops with a message asking for it (or for ``TEM_LIB_REPO`` in the environment).
REPO_URL = ""

CELL_MARKER = "# Colab set-up"

CELL = f'''{CELL_MARKER} (does nothing outside Google Colab): clone and install tem_lib, keeping Colab's torch.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    repo_url = os.environ.get("TEM_LIB_REPO", "{REPO_URL}")  # this repository's git address
    drive_dir = ""  # e.g. "/content/drive/MyDrive/tem_lib": keep runs/ and figures/ on Google Drive
    if not os.path.isdir("{CLONE_DIR}"):
        if not repo_url:
            raise RuntimeError("Colab set-up: set repo_url (or TEM_LIB_REPO) to this repository's git address")
        subprocess.run(["git", "clone", "--depth", "1", repo_url, "{CLONE_DIR}"], check=True)
    sys.path.insert(0, "{CLONE_DIR}")
    from tem_lib.running.colab import setup

    setup("{CLONE_DIR}", drive_dir=drive_dir)'''


def installed_versions(names=KEEP) -> dict[str, str]:
    """The installed version of each package in ``names`` that is installed."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def constraints(versions: dict[str, str]) -> str:
    """A pip constraints file that pins each package to the given version. A local version
    label (Colab's ``2.5.1+cu121``) is kept: pip matches it exactly."""
    return "".join(f"{name}=={version}\n" for name, version in sorted(versions.items()))


def install_command(repo_dir, constraints_file) -> list[str]:
    """pip installing the repository in editable mode under the constraints."""
    return [sys.executable, "-m", "pip", "install", "--quiet", "-e", str(repo_dir), "-c", str(constraints_file)]


def link_storage(repo_dir, drive_dir) -> list[Path]:
    """Make ``repo_dir/runs`` and ``repo_dir/figures`` links into ``drive_dir`` (created), so the
    workspace and the figures outlive the runtime. Refuses to replace a real folder with
    content (it would hide results)."""
    repo_dir, drive_dir = Path(repo_dir), Path(drive_dir)
    links = []
    for name in ("runs", "figures"):
        target = drive_dir / name
        target.mkdir(parents=True, exist_ok=True)
        link = repo_dir / name
        if link.is_symlink():
            if link.resolve() == target.resolve():
                links.append(link)
                continue
            link.unlink()
        elif link.is_dir():
            if any(p.name != ".gitkeep" for p in link.iterdir()):
                raise FileExistsError(f"{link} already holds results; move them to {target} first")
            for p in link.iterdir():
                p.unlink()
            link.rmdir()
        link.symlink_to(target, target_is_directory=True)
        links.append(link)
    return links


def setup(repo_dir=CLONE_DIR, drive_dir: str = "", install: bool = True) -> Path:
    """Install tem_lib from ``repo_dir`` without touching Colab's torch, optionally keep
    ``runs/`` and ``figures/`` on Google Drive, and make ``repo_dir`` the working directory."""
    repo_dir = Path(repo_dir).resolve()
    if not (repo_dir / "tem_lib").is_dir():
        raise FileNotFoundError(f"{repo_dir} is not a tem_lib checkout (no tem_lib/ folder)")
    if install:
        cfile = repo_dir / ".colab-constraints.txt"
        cfile.write_text(constraints(installed_versions()))
        subprocess.run(install_command(repo_dir, cfile), check=True)
    if drive_dir:
        if str(drive_dir).startswith("/content/drive") and not os.path.ismount("/content/drive"):
            from google.colab import drive  # only on Colab
            drive.mount("/content/drive")
        link_storage(repo_dir, drive_dir)
    os.chdir(repo_dir)
    if str(repo_dir) not in sys.path:
        sys.path.insert(0, str(repo_dir))
    return repo_dir


def write_cells(notebooks) -> list[Path]:
    """Put :data:`CELL` as the first code cell of each notebook (replacing an older copy).
    Returns the notebooks that changed."""
    import nbformat

    changed = []
    for path in map(Path, notebooks):
        nb = nbformat.read(path, as_version=4)
        codes = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        first = nb.cells[codes[0]] if codes else None
        if first is not None and first.source.startswith(CELL_MARKER):
            if first.source == CELL:
                continue
            first.source = CELL
        else:
            at = codes[0] if codes else len(nb.cells)
            nb.cells.insert(at, nbformat.v4.new_code_cell(CELL, metadata={"tags": ["colab"]}))
        with atomic_path(path) as tmp:
            nbformat.write(nb, tmp)
        changed.append(path)
    return changed


def main(argv=None):
    ap = argparse.ArgumentParser(description="Colab set-up cell of the notebooks")
    ap.add_argument("--write-cells", nargs="*", metavar="NOTEBOOK",
                    help="write the cell into these notebooks (default: notebooks/[0-9]*.ipynb)")
    args = ap.parse_args(argv)
    if args.write_cells is None:
        ap.print_help()
        return
    from ..workspace import project_root
    paths = args.write_cells or sorted((project_root() / "notebooks").glob("[0-9]*.ipynb"))
    for p in write_cells(paths):
        print("wrote the Colab cell into", p)


if __name__ == "__main__":
    main()
