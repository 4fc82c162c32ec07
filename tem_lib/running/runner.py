"""Execute the numbered notebooks headless, in order, through papermill.

``./run_all.sh`` sets up the environment and calls ``python -m tem_lib.running.runner``.
Parameters come from ``profiles/<profile>.yaml``: the ``common`` section and the
notebook's own section (keyed by its name, e.g. ``01_data_exploration``), filtered to the
parameters the notebook declares (an override no notebook declares is an error). Executed copies go
to ``runs/<profile>/``. A notebook whose executed copy exists for the same parameters, notebook
source, tem_lib source and dataset content (``dataset_dir``'s files) is skipped unless
``force`` or an earlier notebook ran in this call (its outputs feed the later ones); the
first failure stops the run, naming the notebook and the cell.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ..utils import read_json, stable_hash, write_json
from ..workspace import project_root
from .profiles import declared_parameters, load_profile, notebook_parameters


class NotebookFailed(RuntimeError):
    pass


def list_notebooks(notebooks_dir: Path) -> list[Path]:
    return sorted(p for p in notebooks_dir.glob("[0-9][0-9]_*.ipynb"))


def _kernel_name() -> str:
    """A kernel that runs this interpreter: ours if registered for it, else 'python3'
    (ipykernel's built-in spec, which uses the current interpreter)."""
    from jupyter_client.kernelspec import KernelSpecManager
    try:
        spec = KernelSpecManager().get_kernel_spec("tem-lib")
        if Path(spec.argv[0]).resolve() == Path(sys.executable).resolve():
            return "tem-lib"
    except Exception:  # noqa: BLE001 - no such kernel: fall back
        pass
    return "python3"


def run_notebook(nb_path: Path, out_path: Path, params: dict, cwd: Path) -> None:
    import papermill
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.stem}.running.ipynb")
    try:
        papermill.execute_notebook(str(nb_path), str(tmp), parameters=params,
                                   kernel_name=_kernel_name(), cwd=str(cwd),
                                   progress_bar=False, log_output=False)
    except papermill.PapermillExecutionError as e:
        failed = out_path.with_name(out_path.stem + ".failed.ipynb")
        tmp.replace(failed)
        raise NotebookFailed(f"{nb_path.name} failed in cell {e.exec_count} "
                             f"(index {e.cell_index}): {e.ename}: {e.evalue}\n"
                             f"  executed copy with the traceback: {failed}") from None
    tmp.replace(out_path)


def _library_hash() -> str:
    """Hash of tem_lib's source: a library change reruns the notebooks."""
    pkg = Path(__file__).resolve().parents[1]  # the whole tem_lib package
    return stable_hash({str(p.relative_to(pkg)): p.read_text() for p in sorted(pkg.rglob("*.py"))})


def run_pipeline(profile: str = "quick", only=None, force: bool = False, overrides=None,
                 runs_dir=None, root=None, log=print) -> list[dict]:
    """Run the notebooks of ``profile``; return one record per notebook (ran/skipped, s)."""
    root = Path(root or project_root())
    prof = load_profile(profile, root)
    overrides = overrides or {}
    runs_dir = Path(runs_dir or root / "runs" / profile)
    notebooks = list_notebooks(root / "notebooks")
    if only:
        wanted = {str(o).zfill(2) for o in only}
        notebooks = [nb for nb in notebooks if nb.name[:2] in wanted]
        if not notebooks:
            raise ValueError(f"--only {sorted(wanted)} matches no notebook in {root / 'notebooks'}")
    records = []
    lib_hash = _library_hash()
    _check_overrides(notebooks, overrides)
    data_hash = dataset_fingerprint(overrides["dataset_dir"]) if overrides.get("dataset_dir") else None
    upstream_ran = False  # a notebook that ran may have changed what the later ones read
    for k, nb in enumerate(notebooks, 1):
        params = notebook_parameters(nb, prof, overrides)
        key = stable_hash({"params": params, "notebook": nb.read_text(), "tem_lib": lib_hash,
                           **({"dataset": data_hash} if data_hash and "dataset_dir" in params else {})})
        out = runs_dir / nb.name
        stamp = runs_dir / f"{nb.stem}.done.json"
        up_to_date = out.is_file() and stamp.is_file() and read_json(stamp).get("key") == key
        if up_to_date and not force and not upstream_ran:
            log(f"[{k}/{len(notebooks)}] {nb.name}: up to date, skipped (--force reruns it)")
            records.append({"notebook": nb.name, "status": "skipped", "seconds": 0.0})
            continue
        log(f"[{k}/{len(notebooks)}] {nb.name} ({profile}) ... ", end="")
        sys.stdout.flush()
        t0 = time.perf_counter()
        stamp.unlink(missing_ok=True)
        run_notebook(nb, out, params, root)
        dt = time.perf_counter() - t0
        write_json(stamp, {"key": key, "params": params, "seconds": round(dt, 1)})
        log(f"done in {dt:.1f} s")
        records.append({"notebook": nb.name, "status": "ran", "seconds": dt})
        upstream_ran = True
    return records


def _check_overrides(notebooks: list[Path], overrides: dict) -> None:
    """An override (``-p NAME VALUE``) that no notebook of this run declares is a typo: refuse
    it, listing what they declare, instead of dropping it silently."""
    if not overrides:
        return
    declared = set()
    for nb in notebooks:
        declared |= set(declared_parameters(nb))
    unknown = sorted(set(overrides) - declared)
    if unknown:
        raise ValueError(f"-p {', '.join(unknown)}: no notebook of this run declares "
                         f"{'it' if len(unknown) == 1 else 'them'}; their parameters are {sorted(declared)}")


def dataset_fingerprint(path) -> str:
    """Hash of a dataset's content as the file system shows it: every file's relative path,
    size and modification time (a label file edited in place changes it; reading is cheap).
    ``path`` may be the dataset folder or a file of it (a COCO json, a YOLO ``data.yaml``): then
    the folder holding it, and a COCO file's image folder wherever it is, are fingerprinted, since
    the reader reads images and labels from there. An edit that keeps a file's size and
    modification time (``touch -r``) goes unseen: rerun with ``--force``."""
    path = Path(path)
    if path.is_file():
        roots = {path.parent}
        if path.suffix.lower() == ".json":
            from ..data.readers import coco_image_dir
            try:
                roots.add(coco_image_dir(path, read_json(path)))
            except (ValueError, OSError, KeyError, TypeError, AttributeError):
                pass  # not a COCO file with images: its folder is what there is
        skip = (project_root() / "runs").resolve()
        files = sorted({p for r in roots for p in r.rglob("*")
                        if p.is_file() and skip not in p.resolve().parents})
        base = path.parent
    else:
        files, base = sorted(p for p in path.rglob("*") if p.is_file()), path
    return stable_hash([(os.path.relpath(p, base), p.stat().st_size, p.stat().st_mtime_ns) for p in files])


def data_overrides(data, name: str | None, nm_per_px: float | None, overrides: dict,
                   root: Path | None = None) -> tuple[dict, Path]:
    """Parameters that point every notebook at a user's dataset: ``dataset_dir`` (absolute),
    ``nm_per_px`` and a work folder, figures folder and executed notebooks under
    ``runs/<name>/`` (``name`` defaults to the dataset folder's name)."""
    import re
    data = Path(data).expanduser().resolve()
    if not data.exists():
        raise FileNotFoundError(f"{data}: no such dataset folder or file")
    name = name or (data.parent.name if data.is_file() else data.name)
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name) or name in (".", ".."):
        raise ValueError(f"--name {name!r}: use letters, digits, '_', '-' or '.'")
    base = Path(root or project_root()) / "runs" / name
    out = {"work_dir": str(base / "work"), "figures_dir": str(base / "figures"), **overrides,
           "dataset_dir": str(data)}  # an explicit -p work_dir / figures_dir wins
    if nm_per_px is not None:
        from ..data.io import check_pixel_size
        out["nm_per_px"] = check_pixel_size(nm_per_px, "--nm-per-px")
    from ..data.io import check_declared_classes
    check_declared_classes(data, out.get("classes"))  # before any notebook runs
    return out, base / "notebooks"


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tem_lib.running.runner", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="quick", help="smoke | quick | paper (default quick)")
    ap.add_argument("--only", action="append", default=None,
                    help="run only these notebooks by number (e.g. --only 01 --only 02, or 01,02)")
    ap.add_argument("--force", action="store_true", help="rerun notebooks that are up to date")
    ap.add_argument("-p", "--param", nargs=2, action="append", default=[],
                    metavar=("NAME", "VALUE"), help="override a parameter (JSON value)")
    ap.add_argument("--runs-dir", default=None,
                    help="where executed notebooks go (default runs/<profile>)")
    ap.add_argument("--data", default=None, metavar="DIR",
                    help="run notebooks 01-07 and 09 on your own dataset (a folder or a COCO json / YOLO data.yaml in any "
                         "format tem_lib reads); everything goes to runs/NAME/, never over figures/")
    ap.add_argument("--nm-per-px", type=float, default=None, help="with --data: the pixel size in nm")
    ap.add_argument("--name", default=None, help="with --data: the run's name (default: the data folder's name)")
    args = ap.parse_args(argv)
    only = [o for item in (args.only or []) for o in item.split(",") if o] or None
    overrides = {k: _parse_value(v) for k, v in args.param}
    if args.data is None and (args.nm_per_px is not None or args.name is not None):
        ap.error("--nm-per-px and --name go with --data")
    if args.data is not None:
        try:
            overrides, runs_dir = data_overrides(args.data, args.name, args.nm_per_px, overrides)
        except (FileNotFoundError, ValueError) as e:
            print(f"ERROR: {e}", file=sys.stderr)
            return 2
        args.runs_dir = args.runs_dir or runs_dir
        # your data: the study's notebooks 01-07 and 09 (quantify); 08, the U-Net study of seed
        # 002, runs on simulated grain boundaries and needs asking for: --only 08
        only = only or [*(f"{k:02d}" for k in range(1, 8)), "09"]
    t0 = time.perf_counter()
    try:
        run_pipeline(args.profile, only, args.force, overrides, runs_dir=args.runs_dir,
                     log=lambda *a, **kw: print(*a, **kw, flush=True))
    except NotebookFailed as e:
        print(f"\nFAILED: {e}", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError) as e:
        print(f"\nERROR: {e}", file=sys.stderr)
        return 2
    print(f"all notebooks of profile {args.profile!r} done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
