"""The batch runner: one recipe applied to many files, here or on a dask cluster.

Qt-free. :func:`plan` turns inputs (files, folders) and an output folder into
:class:`BatchItem` s; :func:`run_batch` is a generator that processes them one
after the other and yields :class:`FileStarted`, :class:`FileProgress` and
:class:`FileDone` events (the command line draws progress bars from them, the
napari dock drives them on a thread worker), then returns a
:class:`BatchSummary`.

Each file is filtered one of two ways:

* **in memory** (the default when input and result fit): the whole image is
  read, filtered by the scheduler's threaded tiles, exactly as a widget does;
* **streamed**: the input is opened lazily, filtered chunk by chunk (dask
  ``map_blocks`` over overlapped chunks), and each result chunk is written
  straight into the output Zarr by the task that computed it — on local
  threads, or on the workers of a ``dask.distributed`` cluster, so nothing
  is gathered on the client. Tiled, lazy and eager results are identical.

A failed file is reported and skipped; a finished output (its final name
exists) is skipped on the next run; outputs are written under a partial name
and renamed when complete, and a cancelled or failed file leaves nothing.
"""

from __future__ import annotations

import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _scheduler
from ._io import (
    OUTPUT_FORMATS,
    ImageFile,
    ZarrOutput,
    default_chunks,
    find_inputs,
    finish,
    open_image,
    output_path,
    partial_path,
    remove_path,
    store_block,
    write_tiff,
)
from ._memory import available_memory, estimate_memory, format_bytes
from ._scheduler import Cancelled, CancelToken
from .recipes import Recipe, input_labels

__all__ = [
    "BatchItem",
    "FileStarted",
    "FileProgress",
    "FileDone",
    "BatchSummary",
    "LocalEngine",
    "ClusterEngine",
    "plan",
    "describe_plan",
    "parse_spacing",
    "parse_axes",
    "check_output_folder",
    "run_batch",
    "run_all",
    "apply_to_files",
]

# Run a file in memory when input + result + work arrays stay below this share
# of the memory available; else stream it chunk by chunk.
_MEMORY_SHARE = 0.6
_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class BatchItem:
    source: Path
    output: Path

    @property
    def finished(self) -> bool:
        """The output exists under its final name: a complete earlier result."""
        return self.output.exists()


@dataclass(frozen=True)
class FileStarted:
    index: int
    item: BatchItem
    how: str  # "in memory", "streamed", "on the cluster"


@dataclass(frozen=True)
class FileProgress:
    index: int
    done: int
    total: int


@dataclass(frozen=True)
class FileDone:
    index: int
    item: BatchItem
    status: str  # "written", "skipped", "failed", "cancelled"
    message: str = ""
    seconds: float = 0.0


@dataclass
class BatchSummary:
    results: list = field(default_factory=list)
    cancelled: bool = False

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def failed(self) -> list:
        return [r for r in self.results if r.status == "failed"]

    def line(self) -> str:
        parts = [f"{self.count(s)} {s}" for s in ("written", "skipped", "failed") if self.count(s)]
        text = ", ".join(parts) or "nothing to do"
        return text + (" (cancelled)" if self.cancelled else "")


@dataclass(frozen=True)
class LocalEngine:
    """Filter on this machine: ``workers`` threads; ``stream`` True/False forces a path (None: by memory)."""

    workers: int | None = None
    stream: bool | None = None

    @property
    def threads(self) -> int:
        return self.workers or _scheduler.default_workers()

    def describe(self) -> str:
        return f"this machine, {self.threads} threads"


@dataclass(frozen=True)
class ClusterEngine:
    """Filter chunk by chunk on a ``dask.distributed`` cluster through ``client``.

    Inputs and outputs must be on storage the workers see under the same paths.
    """

    client: object

    def describe(self) -> str:
        workers = self.client.scheduler_info().get("workers", {})
        threads = sum(w.get("nthreads", 0) for w in workers.values())
        return f"dask cluster {self.client.scheduler.address}, {len(workers)} workers, {threads} threads"


def parse_spacing(values):
    """A voxel size typed by a person: ``"0.29, 0.26 0.26"``, a list of such words, or "recorded"."""
    if not values:
        return None
    words = [values] if isinstance(values, str) else list(values)
    parts = [p for v in words for p in str(v).replace(",", " ").split()]
    if not parts:
        return None
    if parts == ["recorded"]:
        return "recorded"
    try:
        return tuple(float(p) for p in parts)
    except ValueError:
        raise ValueError(f"spacing: expected numbers or 'recorded', got {' '.join(map(str, words))!r}") from None


def parse_axes(text):
    """Axis labels typed by a person: ``"TZYX"`` (one letter each) or ``"t, c, z, y, x"``."""
    if text is None or not str(text).strip():
        return None
    text = str(text).strip()
    return tuple(p.strip() for p in text.split(",")) if "," in text else tuple(text)


# -- planning -------------------------------------------------------------------------------
def check_output_folder(output_dir) -> Path:
    """Create ``output_dir`` if needed and check that files can be written in it."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"output: {output_dir} is a file, not a folder")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output_dir, prefix=".napari-denoise-probe-"):
            pass
    except OSError as exc:
        raise ValueError(f"output: cannot write in {output_dir} ({exc.strerror or exc})") from None
    return output_dir


def plan(inputs, output_dir, fmt: str = "zarr") -> list[BatchItem]:
    """One :class:`BatchItem` per input file (folders give their TIFF files and Zarr stores)."""
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"format: expected one of {', '.join(OUTPUT_FORMATS)}, got {fmt!r}")
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"output: {output_dir} is a file, not a folder")
    sources = find_inputs(inputs)
    items, seen = [], {}
    for source in sources:
        target = output_path(source, output_dir, fmt)
        if target.resolve() == source.resolve():
            raise ValueError(f"output: {target} would overwrite its input; choose another output folder")
        if target in seen:
            raise ValueError(f"output: {seen[target].name} and {source.name} would both be written to {target.name}")
        seen[target] = source
        items.append(BatchItem(source, target))
    return items


# -- one file -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Settings:
    recipe: Recipe
    spacing: object
    unit: str | None
    axes: object
    fmt: str
    overwrite: bool


def _input_geometry(image: ImageFile, settings: _Settings):
    """``(labels, spatial axes, filter spacing, output scale, output unit)`` for one input."""
    ndim = len(image.shape)
    labels = input_labels(ndim, settings.axes if settings.axes is not None else image.axes)
    recipe = settings.recipe
    spatial = recipe.spatial_axes_for(ndim, labels)
    if settings.spacing is not None:
        given, unit = settings.spacing, settings.unit or recipe.unit
    else:
        given, unit = image.spacing, image.unit if image.spacing is not None else None
    voxel = recipe.spacing_for(ndim, spatial, given, unit)
    scale = _full_scale(given, ndim, spatial)
    return labels, spatial, voxel, scale, unit


def _full_scale(spacing, ndim, spatial):
    if spacing is None or isinstance(spacing, str):
        return None
    values = tuple(float(v) for v in (spacing if isinstance(spacing, (list, tuple)) else [spacing] * ndim))
    if len(values) == ndim:
        return values
    scale = [1.0] * ndim
    for ax, v in zip(spatial, values):
        scale[ax] = v
    return tuple(scale)


def _choose_stream(engine, image: ImageFile, op) -> bool:
    if isinstance(engine, ClusterEngine):
        return True
    if engine.stream is not None:
        return engine.stream
    available = available_memory()
    if available is None:
        return False
    stand_in = np.broadcast_to(np.zeros((), image.dtype), image.shape)
    layout = _scheduler.tile_layout(op, image.shape, engine.threads)
    needed = image.nbytes + estimate_memory(op, stand_in, layout, engine.threads)
    return needed > _MEMORY_SHARE * available


def _parallelism(engine) -> int:
    if isinstance(engine, ClusterEngine):
        workers = engine.client.scheduler_info().get("workers", {})
        return max(1, sum(w.get("nthreads", 1) for w in workers.values()))
    return engine.threads


def _spread(source, parallel: int):
    """``source`` cut along its first axis into at least ``2 * parallel`` chunks when it has fewer.

    A one-chunk file (a TIFF read plane-group by plane-group, a Zarr stored
    in few chunks) would otherwise keep one worker busy and the others idle.
    """
    want = 2 * parallel
    if source.npartitions >= want or source.shape[0] < 2:
        return source
    others = source.npartitions // len(source.chunks[0])
    pieces = min(source.shape[0], -(-want // others))
    return source.rechunk({0: -(-source.shape[0] // pieces)})


def _regular(result):
    """``result`` with a regular chunk grid (every chunk the same size but the last)."""
    regular = all(len(set(c[:-1])) <= 1 and c[-1] <= c[0] for c in result.chunks)
    if not regular:
        result = result.rechunk(tuple(max(c) for c in result.chunks))
    return result, tuple(c[0] for c in result.chunks)


def _process(index, item: BatchItem, settings: _Settings, engine, token: CancelToken):
    """Generator: filter one file into its partial output, yielding ``(done, total)``."""
    image = open_image(item.source)
    labels, spatial, voxel, scale, unit = _input_geometry(image, settings)
    recipe = settings.recipe
    stand_in = np.broadcast_to(np.zeros((), image.dtype), image.shape)
    # voxel is already per spatial axis, in the recipe's unit (or None when unused)
    op = recipe.op(stand_in, spacing=voxel, axes=labels)
    stream = _choose_stream(engine, image, op)
    if stream and settings.fmt == "tiff":
        raise ValueError(
            "format: TIFF output is written from memory, and this input is "
            + ("processed on a cluster" if isinstance(engine, ClusterEngine) else
               f"too large to filter in memory ({format_bytes(image.nbytes)})")
            + "; write OME-Zarr instead (--format zarr)"
        )
    how = "on the cluster" if isinstance(engine, ClusterEngine) else ("streamed" if stream else "in memory")
    yield FileStarted(index, item, how)
    partial = partial_path(item.output)
    item.output.parent.mkdir(parents=True, exist_ok=True)
    remove_path(partial)  # what a stopped run left
    attrs = {
        "recipe": recipe.to_dict(),
        "input": str(item.source),
        "filter_spacing": list(voxel) if voxel is not None else None,
    }
    try:
        if stream:
            source = _spread(image.lazy(), _parallelism(engine))
            result, chunks = _regular(_scheduler.lazy(recipe.op(source, spacing=voxel, axes=labels), source))
            out = ZarrOutput(partial, result.shape, result.dtype, chunks, labels, spatial, scale, unit, attrs,
                             name=item.output.name)
            writes = result.map_blocks(
                store_block, path=str(out.array_path), chunksize=chunks, dtype=np.int8,
                chunks=tuple((1,) * n for n in result.numblocks), meta=np.empty((0,) * result.ndim, np.int8),
            )
            compute = _compute_on_cluster if isinstance(engine, ClusterEngine) else _compute_here
            for done, total in compute(writes, token, engine):
                yield FileProgress(index, done, total)
        else:
            data = image.load()
            op = recipe.op(data, spacing=voxel, axes=labels)
            steps = _scheduler.steps(op, data, workers=engine.threads, token=token)
            try:
                while True:
                    done, total = next(steps)
                    yield FileProgress(index, done, total)
            except StopIteration as stop:
                result = stop.value
            if token.cancelled:
                raise Cancelled("cancelled")
            if settings.fmt == "zarr":
                out = ZarrOutput(partial, result.shape, result.dtype, default_chunks(result.shape, result.dtype),
                                 labels, spatial, scale, unit, attrs, name=item.output.name)
                out.array[...] = result
            else:
                write_tiff(partial, result, labels, scale, unit, spatial)
        if token.cancelled:
            raise Cancelled("cancelled")
        finish(partial, item.output, overwrite=settings.overwrite)
    except BaseException:
        remove_path(partial)
        raise


def _flat_keys(keys):
    if isinstance(keys, list):
        for k in keys:
            yield from _flat_keys(k)
    else:
        yield keys


def _compute_here(writes, token: CancelToken, engine: LocalEngine):
    """Compute ``writes`` on local threads, yielding ``(chunks written, total)``; stops on cancel."""
    import dask

    keys = set(_flat_keys(writes.__dask_keys__()))
    total = len(keys)
    done = [0]

    def pretask(key, dsk, state):
        if token.cancelled:
            raise Cancelled("cancelled")

    def posttask(key, result, dsk, state, worker_id):
        if key in keys:
            done[0] += 1

    outcome = {}
    pool = ThreadPoolExecutor(engine.threads, thread_name_prefix="napari-denoise-batch")

    def compute():
        try:
            # dask's callback tuple (start, start_state, pretask, posttask, finish),
            # for this computation only
            dask.compute(writes, scheduler="threads", pool=pool, callbacks=[(None, None, pretask, posttask, None)])
        except BaseException as exc:  # noqa: BLE001 - handed to the generator
            outcome["error"] = exc

    thread = threading.Thread(target=compute, name="napari-denoise-batch-compute", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(_POLL_SECONDS)
            yield (done[0], total)
    finally:
        if thread.is_alive():  # the consumer stopped early: stop the compute too
            token.cancel()
            thread.join()
        pool.shutdown(wait=True)  # no task writes after this
    if "error" in outcome:
        raise outcome["error"]
    if token.cancelled:
        raise Cancelled("cancelled")


def _compute_on_cluster(writes, token: CancelToken, engine: ClusterEngine):
    """Compute ``writes`` on the cluster's workers (each chunk written where it is computed)."""
    from distributed import futures_of, wait

    client = engine.client
    futures = futures_of(client.persist(writes))
    total = len(futures)
    finished = False
    try:
        while True:
            pending = [f for f in futures if not f.done()]
            yield (total - len(pending), total)
            if token.cancelled:
                raise Cancelled("cancelled")
            failed = next((f for f in futures if f.status == "error"), None)
            if failed is not None:
                raise failed.exception()
            if not pending:
                finished = True
                break
            try:
                wait(pending, timeout=_POLL_SECONDS * 4, return_when="FIRST_COMPLETED")
            except TimeoutError:
                pass
    finally:
        if not finished:
            client.cancel(futures)
            # chunks being written finish within a task's time; let them, so
            # that removing the partial output leaves nothing behind
            deadline = time.monotonic() + 10
            while any(f.status == "pending" for f in futures) and time.monotonic() < deadline:
                time.sleep(_POLL_SECONDS)


def describe_plan(recipe: Recipe, items, *, spacing=None, unit=None, axes=None, fmt: str = "zarr",
                  engine=None, overwrite: bool = False) -> list[str]:
    """One line per item saying what a run would do (reads headers only, computes nothing)."""
    rows = []
    for item in items:
        if item.finished and not overwrite:
            rows.append(f"skip   {item.source} -> {item.output} (output exists)")
            continue
        settings = _Settings(recipe, spacing, unit, axes, fmt, overwrite)
        try:
            image = open_image(item.source)
            labels, spatial, voxel, scale, out_unit = _input_geometry(image, settings)
            op = recipe.op(np.broadcast_to(np.zeros((), image.dtype), image.shape), spacing=voxel, axes=labels)
            how = "on the cluster" if engine is None else (
                "streamed" if _choose_stream(engine, image, op) else "in memory")
            where = ", ".join(labels[ax] for ax in spatial)
            size = "" if voxel is None else f", voxel {tuple(round(v, 6) for v in voxel)} {recipe.unit or 'px'}"
            rows.append(
                f"write  {item.source} -> {item.output}: {'x'.join(map(str, image.shape))} {image.dtype} "
                f"({image.kind}, axes {','.join(labels)}); filter across {where}{size}; {how}"
            )
        except Exception as exc:  # noqa: BLE001 - listed, as a run would report it
            rows.append(f"error  {item.source}: {exc}")
    return rows


# -- many files -----------------------------------------------------------------------------
def run_batch(recipe: Recipe, items, *, spacing=None, unit=None, axes=None, fmt: str | None = None,
              engine=None, token: CancelToken | None = None, overwrite: bool = False):
    """Generator over ``items``: yields events, returns a :class:`BatchSummary`.

    ``spacing``/``unit``/``axes`` override what each file's metadata says
    (see :meth:`Recipe.op`). ``fmt`` defaults to each output's suffix.
    Cancelling ``token`` stops the current file (its partial output is
    removed) and the run; files not reached are left as they were.
    """
    engine = engine or LocalEngine()
    token = token or CancelToken()
    summary = BatchSummary()
    for index, item in enumerate(items):
        if token.cancelled:
            summary.cancelled = True
            break
        if item.finished and not overwrite:
            done = FileDone(index, item, "skipped", "output exists")
            summary.results.append(done)
            yield done
            continue
        settings = _Settings(recipe, spacing, unit, axes,
                             fmt or ("tiff" if item.output.suffix == ".tif" else "zarr"), overwrite)
        start = time.perf_counter()
        try:
            yield from _process(index, item, settings, engine, token)
        except Cancelled:
            summary.cancelled = True
            done = FileDone(index, item, "cancelled", "cancelled; nothing written", time.perf_counter() - start)
            summary.results.append(done)
            yield done
            break
        except Exception as exc:  # noqa: BLE001 - reported, then the next file
            message = str(exc) or type(exc).__name__
            done = FileDone(index, item, "failed", message, time.perf_counter() - start)
        else:
            done = FileDone(index, item, "written", "", time.perf_counter() - start)
        summary.results.append(done)
        yield done
    return summary


def run_all(recipe: Recipe, items, **kwargs) -> BatchSummary:
    """:func:`run_batch` to the end, ignoring progress (scripts and tests)."""
    run = run_batch(recipe, items, **kwargs)
    while True:
        try:
            next(run)
        except StopIteration as stop:
            return stop.value


def apply_to_files(recipe: Recipe, inputs, output_dir, *, fmt: str = "zarr", spacing=None, unit=None, axes=None,
                   client=None, workers: int | None = None, overwrite: bool = False) -> BatchSummary:
    """Apply ``recipe`` to files and folders, writing one output per input into ``output_dir``.

    What ``napari-denoise apply`` does, from Python: TIFF/OME-TIFF/OME-Zarr
    inputs with their own voxel size and axes (``spacing``, ``unit``,
    ``axes`` override them), float32 OME-Zarr (``fmt="zarr"``) or TIFF
    outputs written atomically, finished outputs skipped, failed files
    reported in the returned :class:`BatchSummary` and skipped.

    ``client``: a ``dask.distributed.Client`` (a ``LocalCluster``, a
    dask-jobqueue ``SLURMCluster``, a dask-gateway cluster, ...): every file
    is then filtered chunk by chunk on its workers, which must see the same
    paths. Otherwise the files are filtered here on ``workers`` threads.
    """
    check_output_folder(output_dir)
    items = plan(inputs, output_dir, fmt)
    engine = ClusterEngine(client) if client is not None else LocalEngine(workers=workers)
    return run_all(recipe, items, spacing=spacing, unit=unit, axes=axes, fmt=fmt, engine=engine, overwrite=overwrite)
