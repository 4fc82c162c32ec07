"""Whether a refactor changed results: two pipeline outputs (each a folder holding the work,
figures and runs folders of one profile run, e.g. from two commits) compared file by file.
CSV tables cell by cell, JSON by value; what only records when, where or by which revision a
thing ran (git revision, seconds, package versions, cache keys, the run's own folder) is set
aside and listed, never silently dropped.

    python -m tem_lib.running.runner --profile smoke --runs-dir A/runs -p work_dir '"A/work"' \\
        -p figures_dir '"A/figures"' -p data_dir '"A/data"'      # at the old commit, then the new into B
    python benchmarks/compare_runs.py A B [--name compare_runs_smoke]
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

from _common import markdown_table, write_results

# what a run records about itself, not what it computed
VOLATILE_KEYS = {"git", "git_revision", "git_dirty", "created", "versions", "python", "platform", "key",
                 "detector_json_hash", "images_per_second"}
VOLATILE_SUFFIXES = ("seconds", "seconds_this_run")


IGNORED: set[str] = set()  # --ignore: set aside at any depth, like the keys above


def volatile(key: str) -> bool:
    return key in VOLATILE_KEYS or key in IGNORED or key.endswith(VOLATILE_SUFFIXES)


def same_value(x, y) -> bool:
    if isinstance(x, dict) and isinstance(y, dict):
        keys = {k for k in set(x) | set(y) if not volatile(k)}
        return all(same_value(x.get(k), y.get(k)) for k in keys)
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(same_value(u, v) for u, v in zip(x, y))
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    return x == y


def differing_keys(x, y) -> tuple[list[str], list[str]]:
    """The top-level keys whose values differ: those that count, and those set aside."""
    if not (isinstance(x, dict) and isinstance(y, dict)):
        return ([] if same_value(x, y) else ["(whole file)"]), []
    keys = sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))
    return [k for k in keys if not volatile(k) and not same_value(x.get(k), y.get(k))], [k for k in keys if volatile(k)]


def read_json(path: Path, root: Path):
    return json.loads(path.read_text().replace(str(root), "<run>"))  # the run's own folder is not a result


def compare(a: Path, b: Path) -> tuple[pd.DataFrame, dict]:
    """One row per CSV or JSON file in both folders: equal or not, what differs, what was set aside."""
    fa = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    fb = {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    rows = []
    for r in sorted(fa & fb):
        if r.suffix == ".csv":
            x, y = pd.read_csv(a / r), pd.read_csv(b / r)
            if list(x.columns) != list(y.columns) or len(x) != len(y):
                real, aside = ["columns or rows"], []
            else:
                cols = [c for c in x.columns if not x[c].equals(y[c])]
                real, aside = [c for c in cols if not volatile(c)], [c for c in cols if volatile(c)]
        elif r.suffix == ".json":
            real, aside = differing_keys(read_json(a / r, a), read_json(b / r, b))
        else:
            continue
        rows.append({"file": str(r), "kind": r.suffix[1:], "equal": not real, "differs": ", ".join(real),
                     "set_aside": ", ".join(aside)})
    return pd.DataFrame(rows), {"only_old": sorted(map(str, fa - fb)), "only_new": sorted(map(str, fb - fa))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--name", default="compare_runs_smoke")
    ap.add_argument("--ignore", nargs="*", default=["sweep", "init_weights"],
                    help="keys or columns that record the configuration's form or a path, not a result "
                         "(default: the sweep's settings, whose LDM fields moved; the initial weights' "
                         "record, which holds a hash of a file with timings)")
    args = ap.parse_args()
    IGNORED.update(args.ignore)
    table, only = compare(args.old.resolve(), args.new.resolve())
    summary = table.groupby("kind").equal.agg(files="count", equal="sum").reset_index()
    bad = table[~table.equal]
    notes = f"""
`{args.old}` against `{args.new}`: {len(table)} files in both ({', '.join(f'{r.files} {r.kind}' for r in summary.itertuples())}),
**{int(table.equal.sum())} equal**, {len(bad)} not; set aside as records of the run rather than results:
{sorted(VOLATILE_KEYS)}, anything ending in {list(VOLATILE_SUFFIXES)}, and {args.ignore}. Files only in the old
run: {len(only['only_old'])}; only in the new: {len(only['only_new'])} ({', '.join(only['only_new'][:12])}).

{markdown_table(summary)}

Files that differ in more than the set-aside fields:

{markdown_table(bad) if len(bad) else "(none)"}
"""
    write_results(args.name, {"old": str(args.old), "new": str(args.new), "files": table.to_dict(orient="records"),
                              **only, "ignored": args.ignore}, None, notes)


if __name__ == "__main__":
    main()
