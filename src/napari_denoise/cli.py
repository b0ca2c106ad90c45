"""``napari-denoise``: replay a recipe saved in napari on many files, here or on a dask cluster.

    napari-denoise apply RECIPE INPUT... --output DIR [options]
    napari-denoise list [FILTER]

``apply`` reads TIFF, OME-TIFF and OME-Zarr inputs (files, or folders of
them) with the voxel size and axes their metadata gives, and writes one
float32 OME-Zarr (or TIFF) per input into DIR. Finished outputs are skipped,
so an interrupted run is simply started again; a file that fails is reported
and the others go on. Exit status: 0 when every file was written or skipped,
1 when a file failed, 2 for a bad recipe, input or output folder, 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

from ._batch import (
    BatchSummary,
    ClusterEngine,
    FileDone,
    FileProgress,
    FileStarted,
    LocalEngine,
    check_output_folder,
    describe_plan,
    parse_axes,
    parse_spacing,
    plan,
    run_batch,
)
from ._io import OUTPUT_FORMATS
from ._scheduler import CancelToken
from .recipes import RecipeError, load_recipe

__all__ = ["main", "build_parser"]

MISSING_DISTRIBUTED = (
    "napari-denoise: --scheduler and --workers run on dask.distributed, which is not installed.\n"
    "Install it with:  pip install 'napari-denoise[cluster]'   (or: pip install distributed)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-denoise",
        description="Apply a napari-denoise recipe (saved from a result layer in napari) to files.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    apply = commands.add_parser(
        "apply",
        help="apply a recipe to TIFF / OME-TIFF / OME-Zarr files",
        description="Apply RECIPE (JSON or YAML) to every INPUT (files, or folders of .tif/.tiff files and "
        ".zarr stores) and write one output per input into --output.",
    )
    apply.add_argument("recipe", metavar="RECIPE", help="recipe file (.json, .yaml)")
    apply.add_argument("inputs", metavar="INPUT", nargs="+", help="TIFF/OME-TIFF files, OME-Zarr folders, or folders of them")
    apply.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder (created if needed)")
    apply.add_argument("--format", choices=OUTPUT_FORMATS, default="zarr",
                       help="zarr: float32 OME-Zarr (default, streams); tiff: (OME-)TIFF, written from memory")
    apply.add_argument("--spacing", nargs="+", metavar="SIZE",
                       help="voxel size overriding the files' metadata: one value per axis or per spatial axis "
                       "(e.g. --spacing 0.29 0.26 0.26), in --unit; or 'recorded' for the recipe's source layer's")
    apply.add_argument("--unit", help="unit of --spacing (default: the recipe's, e.g. µm); nm, µm, mm, ...")
    apply.add_argument("--axes", help="axis labels overriding the files' metadata, e.g. TZYX or t,c,z,y,x")
    apply.add_argument("--dry-run", action="store_true", help="list what would be done, compute nothing")
    apply.add_argument("--overwrite", action="store_true", help="redo files whose output exists")
    cluster = apply.add_mutually_exclusive_group()
    cluster.add_argument("--scheduler", metavar="ADDRESS",
                         help="dask.distributed scheduler (e.g. tcp://10.0.0.5:8786): filter chunk by chunk on its "
                         "workers, which must see the input and output paths")
    cluster.add_argument("--workers", type=int, metavar="N",
                         help="start a local dask.distributed cluster of N worker processes")
    apply.add_argument("--threads", type=int, metavar="N",
                       help="threads here (default: every core), or per worker with --workers (default 1)")
    bars = apply.add_mutually_exclusive_group()
    bars.add_argument("--progress", dest="progress", action="store_const", const=True, default=None,
                      help="progress bars even when stderr is not a terminal")
    bars.add_argument("--no-progress", dest="progress", action="store_const", const=False,
                      help="no progress bars (one line per file only)")

    listing = commands.add_parser("list", help="list the filters and their parameters",
                                  description="List the filters a recipe may name, with their parameters.")
    listing.add_argument("filter", nargs="?", help="show only this filter")
    return parser


# -- list -------------------------------------------------------------------------------------
def _parameter_docs(function) -> dict:
    import docstring_parser

    docs = {}
    for p in docstring_parser.parse(inspect.getdoc(function) or "").params:
        for name in p.arg_name.split(","):
            docs[name.strip()] = (p.type_name or "", " ".join((p.description or "").split()))
    return docs


def list_filters(name=None, out=None) -> int:
    from ._registry import FILTERS, widget_parameters

    out = sys.stdout if out is None else out
    specs = [s for s in FILTERS if name in (None, s.name, s.display_name)]
    if not specs:
        print(f"napari-denoise: no filter named {name!r}; known: {', '.join(s.name for s in FILTERS)}", file=sys.stderr)
        return 2
    for spec in specs:
        docs = _parameter_docs(spec.function)
        print(f"{spec.name}  ({spec.display_name}, {spec.family}): {spec.summary}", file=out)
        for p in widget_parameters(spec):
            kind, text = docs.get(p.name, ("", ""))
            default = "auto" if p.default is None else repr(p.default)
            length = "  [length: recipe unit or pixels]" if p.name in spec.lengths else ""
            print(f"    {p.name} = {default}{length}", file=out)
            if kind:
                print(f"        {kind}", file=out)
            if text:
                print(f"        {text}", file=out)
        print(file=out)
    return 0


# -- apply ------------------------------------------------------------------------------------
def _engine(args):
    """``(engine, closer)`` for the run: this machine, or a dask.distributed client."""
    if args.scheduler is None and args.workers is None:
        return LocalEngine(workers=args.threads), None
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise SystemExit(MISSING_DISTRIBUTED) from None
    if args.scheduler is not None:
        client = Client(args.scheduler)
        return ClusterEngine(client), client.close
    if args.workers < 1:
        raise SystemExit("napari-denoise: --workers must be at least 1")
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=args.threads or 1, processes=True,
                           dashboard_address=None)
    client = Client(cluster)

    def close():
        client.close()
        cluster.close()

    return ClusterEngine(client), close


class _Bars:
    """An overall bar (files) and one for the current file (tqdm, on stderr)."""

    def __init__(self, n_files: int, enabled: bool):
        self.enabled = enabled
        self.overall = self.current = None
        if enabled:
            from tqdm import tqdm

            self._tqdm = tqdm
            self.overall = tqdm(total=n_files, desc="files", unit="file", position=0, dynamic_ncols=True)
            self.current = tqdm(total=1, desc="", position=1, leave=False, dynamic_ncols=True,
                                bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    def write(self, text: str) -> None:
        if self.enabled:
            self._tqdm.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def start(self, name: str, how: str) -> None:
        if self.enabled:
            self.current.reset(total=1)
            self.current.set_description_str(f"{name} ({how})")

    def progress(self, done: int, total: int) -> None:
        if self.enabled and total:
            if self.current.total != total:
                self.current.reset(total=total)
            self.current.update(done - self.current.n)

    def file_done(self) -> None:
        if self.enabled:
            self.overall.update(1)

    def close(self) -> None:
        if self.enabled:
            self.current.close()
            self.overall.close()


def _report(summary: BatchSummary, out) -> None:
    print(f"napari-denoise: {summary.line()}", file=out)
    for result in summary.failed:
        print(f"  failed: {result.item.source}: {result.message}", file=out)


def apply_command(args) -> int:
    try:
        recipe = load_recipe(args.recipe)
        spacing, axes = parse_spacing(args.spacing), parse_axes(args.axes)
        items = plan(args.inputs, args.output, args.format)
    except (RecipeError, ValueError, FileNotFoundError) as exc:
        print(f"napari-denoise: {exc}", file=sys.stderr)
        return 2
    if not items:
        print("napari-denoise: no TIFF files or Zarr stores among the inputs", file=sys.stderr)
        return 2
    print(f"recipe: {recipe.describe()} (napari-denoise {recipe.version})", file=sys.stderr)
    if args.dry_run:
        rows = describe_plan(recipe, items, spacing=spacing, unit=args.unit, axes=axes, fmt=args.format,
                             engine=LocalEngine(workers=args.threads) if args.scheduler is None and args.workers is None
                             else None, overwrite=args.overwrite)
        for row in rows:
            print(row)
        return 1 if any(row.startswith("error") for row in rows) else 0
    try:
        check_output_folder(args.output)
    except ValueError as exc:
        print(f"napari-denoise: {exc}", file=sys.stderr)
        return 2
    engine, close = _engine(args)
    token = CancelToken()
    bars = _Bars(len(items), enabled=sys.stderr.isatty() if args.progress is None else args.progress)
    bars.write(f"running on {engine.describe()}")
    run = run_batch(recipe, items, spacing=spacing, unit=args.unit, axes=axes, fmt=args.format,
                    engine=engine, token=token, overwrite=args.overwrite)
    summary = None
    try:
        while True:
            try:
                event = next(run)
            except StopIteration as stop:
                summary = stop.value
                break
            if isinstance(event, FileStarted):
                bars.start(event.item.source.name, event.how)
            elif isinstance(event, FileProgress):
                bars.progress(event.done, event.total)
            elif isinstance(event, FileDone):
                bars.file_done()
                detail = f" ({event.seconds:.1f} s)" if event.status == "written" else ""
                note = f": {event.message}" if event.message else ""
                bars.write(f"{event.status}: {event.item.source.name} -> {event.item.output}{detail}{note}")
    except KeyboardInterrupt:
        token.cancel()
        run.close()  # removes the partial output of the file in progress
        bars.close()
        print("napari-denoise: interrupted; finished outputs are kept, run again to go on", file=sys.stderr)
        return 130
    finally:
        bars.close()
        if close is not None:
            close()
    _report(summary, sys.stderr)
    return 1 if summary.failed else 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        return list_filters(args.filter)
    return apply_command(args)


if __name__ == "__main__":
    raise SystemExit(main())
