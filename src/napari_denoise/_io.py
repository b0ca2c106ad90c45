"""Reading microscopy files with their voxel size and axes; writing results atomically.

Inputs: TIFF and OME-TIFF (tifffile; voxel size from the OME-XML or from
ImageJ's metadata), OME-Zarr (NGFF 0.4 and 0.5: axes, units and the first
dataset's scale) and plain Zarr arrays. Large inputs are opened lazily as
dask arrays whose tasks reopen the file by path, so they run in other
processes (dask.distributed workers) as well as here.

Outputs: OME-Zarr (NGFF 0.4, Zarr format 2: readable by napari-ome-zarr,
ome-zarr-py, Fiji/BigDataViewer and zarr-python 2 and 3), one resolution
level, float32, with the input's axes, units and scale; or (OME-)TIFF.
Every output is written under a temporary name beside its final one and
renamed when complete, so a file with the final name is always finished and a
run that stopped half-way leaves only a ``.partial`` that the next run
replaces.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._layer_axes import CHANNEL_LABELS, TIME_LABELS
from ._units import convert_lengths, ome_unit, unit_name

__all__ = [
    "ImageFile",
    "open_image",
    "is_image_path",
    "find_inputs",
    "output_path",
    "partial_path",
    "remove_path",
    "finish",
    "ZarrOutput",
    "write_tiff",
    "OUTPUT_FORMATS",
]

OUTPUT_FORMATS = ("zarr", "tiff")
TIFF_SUFFIXES = (".tif", ".tiff")
ZARR_SUFFIXES = (".zarr",)
PARTIAL_SUFFIX = ".partial"
# Lazy TIFF chunks hold about this many bytes (whole planes).
_TIFF_CHUNK_BYTES = 64 << 20
_TIFF_LETTERS = {"T": "t", "Z": "z", "C": "c", "Y": "y", "X": "x", "S": "s"}


@dataclass(frozen=True)
class ImageFile:
    """An input image: where it is, its shape, and what its metadata says.

    axes: one label per axis ("t", "c", "z", "y", "x"; None when unknown).
    spacing: voxel size per axis in ``unit`` (1.0 on non-spatial axes), or
        None when the file records none.
    """

    path: Path
    kind: str  # "tiff", "ome-tiff", "imagej-tiff", "ome-zarr", "zarr"
    shape: tuple[int, ...]
    dtype: np.dtype
    axes: tuple[str | None, ...] | None
    spacing: tuple[float, ...] | None
    unit: str | None
    array_path: Path | None = None  # the zarr array holding full resolution
    lazy_tiff: bool = False  # one 2-D plane per page: readable plane by plane

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    def load(self) -> np.ndarray:
        """The whole image in memory."""
        if self.kind.endswith("zarr"):
            import zarr

            return np.asarray(zarr.open_array(str(self.array_path), mode="r")[...])
        import tifffile

        with tifffile.TiffFile(self.path) as tif:
            return tif.series[0].asarray()

    def lazy(self):
        """The image as a dask array whose tasks read it by path (nothing read now)."""
        import dask.array as da

        if self.kind.endswith("zarr"):
            import zarr

            stored = zarr.open_array(str(self.array_path), mode="r")
            chunks = stored.chunks
            return da.map_blocks(
                _read_zarr_block,
                dtype=self.dtype,
                chunks=da.core.normalize_chunks(chunks, self.shape),
                meta=np.empty((0,) * len(self.shape), self.dtype),
                path=str(self.array_path),
                chunksize=tuple(chunks),
                name=f"read-{_token(self.path)}",
            )
        if not self.lazy_tiff:
            return da.from_array(self.load(), chunks=-1)
        plane = math.prod(self.shape[-2:]) * np.dtype(self.dtype).itemsize
        lead = self.shape[:-2]
        per_chunk = max(1, _TIFF_CHUNK_BYTES // max(1, plane))
        inner = min(lead[-1], per_chunk) if lead else 1
        chunks = tuple((1,) * n for n in lead[:-1]) + ((inner,) if lead else ()) + self.shape[-2:]
        return da.map_blocks(
            _read_tiff_block,
            dtype=self.dtype,
            chunks=da.core.normalize_chunks(chunks, self.shape),
            meta=np.empty((0,) * len(self.shape), self.dtype),
            path=str(self.path),
            shape=self.shape,
            inner=inner,
            name=f"read-{_token(self.path)}",
        )


def _token(path: Path) -> str:
    from dask.base import tokenize

    stat = path.stat()
    return tokenize(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def _read_zarr_block(*, path, chunksize, block_id=None):
    import zarr

    stored = zarr.open_array(path, mode="r")
    region = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(block_id, chunksize, stored.shape))
    return np.asarray(stored[region])


def _read_tiff_block(*, path, shape, inner, block_id=None):
    """Pages of one chunk of a one-plane-per-page TIFF (pages are in C order of the leading axes)."""
    import tifffile

    lead = shape[:-2]
    index = list(block_id[: len(lead)])
    start_inner = index[-1] * inner if lead else 0
    stop_inner = min(start_inner + inner, lead[-1]) if lead else 1
    first = int(np.ravel_multi_index(tuple(index[:-1]) + (start_inner,), lead)) if lead else 0
    count = stop_inner - start_inner
    with tifffile.TiffFile(path) as tif:
        planes = tif.series[0].asarray(key=range(first, first + count))
    out_shape = (1,) * max(0, len(lead) - 1) + (count,) + tuple(shape[-2:]) if lead else tuple(shape)
    return np.asarray(planes).reshape(out_shape)


# -- finding inputs -------------------------------------------------------------------------
def is_image_path(path: Path) -> bool:
    """A TIFF file or a Zarr folder (by name)."""
    name = path.name.lower()
    if name.endswith(ZARR_SUFFIXES):
        return path.is_dir()
    return name.endswith(TIFF_SUFFIXES) and path.is_file()


def find_inputs(paths) -> list[Path]:
    """Files given, and the TIFF files and Zarr folders directly inside folders given, sorted.

    A ``.zarr`` folder is one input, never searched. Raises ``FileNotFoundError``
    for a path that does not exist.
    """
    found = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"input: {path} does not exist")
        if path.is_dir() and not path.name.lower().endswith(ZARR_SUFFIXES):
            found.extend(sorted(p for p in path.iterdir() if not p.name.startswith(".") and is_image_path(p)))
        else:
            found.append(path)
    unique = []
    for path in found:
        if path not in unique:
            unique.append(path)
    return unique


def stem(path: Path) -> str:
    name = path.name
    for suffix in (".ome.zarr", ".ome.tiff", ".ome.tif", ".zarr", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def output_path(source: Path, output_dir: Path, fmt: str) -> Path:
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"format: expected one of {OUTPUT_FORMATS}, got {fmt!r}")
    return Path(output_dir) / (stem(source) + (".ome.zarr" if fmt == "zarr" else ".tif"))


def partial_path(final: Path) -> Path:
    """Where ``final`` is written until it is complete (hidden, never taken for finished)."""
    return final.with_name("." + final.name + PARTIAL_SUFFIX)


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def finish(partial: Path, final: Path, *, overwrite: bool = False) -> None:
    """Give the complete output its final name (one rename: it appears whole or not at all)."""
    if final.exists():
        if not overwrite:
            raise FileExistsError(f"output: {final} appeared while writing; not replaced")
        old = final.with_name("." + final.name + ".old")
        remove_path(old)
        os.rename(final, old)
        os.rename(partial, final)
        remove_path(old)
        return
    os.rename(partial, final)


# -- reading --------------------------------------------------------------------------------
def open_image(path) -> ImageFile:
    """Open an input's metadata (nothing is read but headers)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input: {path} does not exist")
    if path.is_dir():
        return _open_zarr(path)
    if path.name.lower().endswith(TIFF_SUFFIXES):
        return _open_tiff(path)
    raise ValueError(f"input: {path.name} is neither a TIFF file nor a Zarr folder")


def _open_tiff(path: Path) -> ImageFile:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, dtype, letters = tuple(series.shape), np.dtype(series.dtype), series.axes
            axes = tuple(_TIFF_LETTERS.get(a, None if a in "QI" else a.lower()) for a in letters)
            spacing, unit, kind = None, None, "tiff"
            if tif.is_ome:
                kind = "ome-tiff"
                spacing, unit = _ome_xml_spacing(tif.ome_metadata, letters)
            elif tif.is_imagej:
                kind = "imagej-tiff"
                spacing, unit = _imagej_spacing(tif.imagej_metadata or {}, tif.pages[0], letters)
            pages = len(series)
            lazy = (
                len(shape) > 2
                and pages == math.prod(shape[:-2])
                and tuple(series.keyframe.shape) == shape[-2:]
            )
    except (tifffile.TiffFileError, ValueError, OSError, IndexError, KeyError, struct.error) as exc:
        raise ValueError(f"input: {path.name} is not a readable TIFF file ({exc})") from None
    return ImageFile(path, kind, shape, dtype, axes, spacing, unit, lazy_tiff=lazy)


def _ome_xml_spacing(xml: str | None, letters: str):
    if not xml:
        return None, None
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return None, None
    pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None or pixels.get("PhysicalSizeX") is None:
        return None, None
    unit = unit_name(pixels.get("PhysicalSizeXUnit", "µm"))
    sizes = {}
    for letter in "XYZ":
        value = pixels.get(f"PhysicalSize{letter}")
        if value is not None:
            size_unit = pixels.get(f"PhysicalSize{letter}Unit", "µm")
            sizes[letter] = convert_lengths((float(value),), size_unit, unit)[0]
    return tuple(sizes.get(a, 1.0) for a in letters), unit


def _imagej_spacing(meta: dict, page, letters: str):
    unit = unit_name(str(meta.get("unit", "")).replace("\\u00B5", "µ")) if meta.get("unit") else None
    resolution = getattr(page, "resolution", (1.0, 1.0))
    if unit is None and tuple(resolution) == (1.0, 1.0) and "spacing" not in meta:
        return None, None
    x = 1.0 / resolution[0] if resolution[0] else 1.0
    y = 1.0 / resolution[1] if resolution[1] else 1.0
    sizes = {"X": x, "Y": y, "Z": float(meta.get("spacing", 1.0))}
    return tuple(sizes.get(a, 1.0) for a in letters), unit


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _zarr_node(path: Path):
    """``("group" | "array", attributes)`` of a Zarr v2 or v3 node, or None."""
    v3 = _read_json(path / "zarr.json")
    if isinstance(v3, dict):
        return v3.get("node_type"), v3.get("attributes", {}) or {}
    attrs = _read_json(path / ".zattrs") or {}
    if (path / ".zgroup").is_file():
        return "group", attrs
    if (path / ".zarray").is_file():
        return "array", attrs
    return None


def _open_zarr(path: Path) -> ImageFile:
    node = _zarr_node(path)
    if node is None:
        raise ValueError(f"input: {path.name} is a folder but not a Zarr store (no .zgroup, .zarray or zarr.json)")
    kind, attrs = node
    axes = spacing = unit = None
    array_path = path
    if kind == "group":
        meta = attrs.get("ome", attrs)
        multiscales = meta.get("multiscales")
        if not multiscales:
            raise ValueError(f"input: {path.name} is a Zarr group without OME-Zarr 'multiscales' metadata")
        image = multiscales[0]
        dataset = image["datasets"][0]
        array_path = path / dataset["path"]
        raw_axes = image.get("axes")
        names, units, types = [], [], []
        for axis in raw_axes or []:
            if isinstance(axis, str):
                names.append(axis), units.append(None), types.append(None)
            else:
                names.append(axis.get("name")), units.append(axis.get("unit")), types.append(axis.get("type"))
        axes = tuple(names) if raw_axes else None
        scale = _scale(dataset.get("coordinateTransformations"))
        overall = _scale(image.get("coordinateTransformations"))
        if scale is not None and overall is not None:
            scale = [a * b for a, b in zip(scale, overall)]
        if scale is not None:
            spatial_units = [u for u, t in zip(units, types) if u and t in (None, "space")]
            unit = unit_name(spatial_units[-1]) if spatial_units else None
            spacing = tuple(
                convert_lengths((s,), u, unit)[0] if (u and unit and t in (None, "space")) else float(s)
                for s, u, t in zip(scale, units or [None] * len(scale), types or [None] * len(scale))
            )
        kind = "ome-zarr"
    else:
        kind = "zarr"
        dims = attrs.get("_ARRAY_DIMENSIONS")  # xarray's convention
        axes = tuple(dims) if isinstance(dims, list) else None
    import zarr

    try:
        stored = zarr.open_array(str(array_path), mode="r")
    except Exception as exc:  # zarr raises several types for a damaged store
        raise ValueError(f"input: {path.name}: cannot open its Zarr array ({exc})") from None
    shape = tuple(stored.shape)
    if axes is not None and len(axes) != len(shape):
        raise ValueError(f"input: {path.name}: {len(axes)} axes in its metadata for {len(shape)} dimensions")
    if spacing is not None and len(spacing) != len(shape):
        spacing = None
    return ImageFile(path, "ome-zarr" if kind == "ome-zarr" else "zarr", shape, np.dtype(stored.dtype), axes,
                     spacing, unit, array_path=array_path)


def _scale(transforms):
    for t in transforms or []:
        if isinstance(t, dict) and t.get("type") == "scale" and "scale" in t:
            return [float(v) for v in t["scale"]]
    return None


# -- writing --------------------------------------------------------------------------------
def _axis_entry(label: str, spatial: bool, unit) -> dict:
    entry = {"name": label}
    low = label.lower()
    if low in TIME_LABELS:
        entry["type"] = "time"
    elif low in CHANNEL_LABELS:
        entry["type"] = "channel"
    elif spatial:
        entry["type"] = "space"
        if ome_unit(unit):
            entry["unit"] = ome_unit(unit)
    return entry


def _zarr_format_kwargs() -> dict:
    import zarr

    return {"zarr_format": 2} if int(zarr.__version__.split(".")[0]) >= 3 else {}


class ZarrOutput:
    """An OME-Zarr image (NGFF 0.4, Zarr format 2) being written at ``path``.

    ``labels``: one per axis; ``spatial``: the axes that get type "space",
    ``unit`` and ``spacing`` (the rest get scale 1). ``attrs`` go under the
    group's ``napari_denoise`` key (the recipe and the input it was applied to).
    """

    def __init__(self, path: Path, shape, dtype, chunks, labels, spatial, spacing, unit, attrs=None, name=""):
        import zarr

        self.path = Path(path)
        remove_path(self.path)
        self.path.mkdir(parents=True)
        scale = [1.0] * len(shape)
        if spacing is not None:
            for ax in spatial:
                scale[ax] = float(spacing[ax])
        axes = [_axis_entry(label, ax in spatial, unit) for ax, label in enumerate(labels)]
        multiscales = [{
            "version": "0.4",
            "name": name,
            "axes": axes,
            "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
        }]
        (self.path / ".zgroup").write_text(json.dumps({"zarr_format": 2}), encoding="utf-8")
        group_attrs = {"multiscales": multiscales}
        if attrs:
            group_attrs["napari_denoise"] = attrs
        (self.path / ".zattrs").write_text(json.dumps(group_attrs, indent=2, ensure_ascii=False), encoding="utf-8")
        self.array_path = self.path / "0"
        self.chunks = tuple(int(c) for c in chunks)
        self.array = zarr.open_array(
            str(self.array_path), mode="w", shape=tuple(shape), chunks=self.chunks, dtype=dtype,
            **_zarr_format_kwargs(),
        )


def store_block(block, *, path: str, chunksize, block_id=None):
    """dask task: write one block of a regularly chunked result into the Zarr array at ``path``.

    Opens the array by path (so it runs in any worker process) with mode
    ``r+``: when the partial output was removed (a cancelled run) it fails
    instead of recreating it. Returns a one-element marker (nothing to gather).
    """
    import zarr

    target = zarr.open_array(path, mode="r+")
    region = tuple(slice(i * c, i * c + n) for i, c, n in zip(block_id, chunksize, block.shape))
    target[region] = block
    return np.ones((1,) * block.ndim, np.int8)


def default_chunks(shape, dtype=np.float32, *, limit_bytes: int = 16 << 20) -> tuple[int, ...]:
    """Chunks of an eager result: whole last axes, leading axes split, about ``limit_bytes`` each."""
    chunks = list(shape)
    itemsize = np.dtype(dtype).itemsize
    for ax in range(len(shape)):
        if math.prod(chunks) * itemsize <= limit_bytes:
            break
        rest = math.prod(chunks[ax + 1:]) * itemsize
        chunks[ax] = max(1, min(shape[ax], limit_bytes // max(1, rest)))
    return tuple(max(1, c) for c in chunks)


def write_tiff(path: Path, data: np.ndarray, labels, spacing, unit, spatial) -> None:
    """Write ``data`` as OME-TIFF when its axes are OME's (t, c, z, y, x), else as plain TIFF."""
    import tifffile

    letters = {"t": "T", "c": "C", "z": "Z", "y": "Y", "x": "X"}
    axes = "".join(letters.get(str(label).lower(), "?") for label in labels)
    data = data.astype(np.uint8) if data.dtype == np.bool_ else data
    ome_ok = "?" not in axes and len(set(axes)) == len(axes) and axes.endswith("YX")
    if not ome_ok:
        tifffile.imwrite(path, data, photometric="minisblack")
        return
    metadata = {"axes": axes}
    if spacing is not None:
        for ax in spatial:
            letter = axes[ax]
            if letter in "XYZ":
                metadata[f"PhysicalSize{letter}"] = float(spacing[ax])
                if unit_name(unit):
                    metadata[f"PhysicalSize{letter}Unit"] = unit_name(unit)
    tifffile.imwrite(path, data, ome=True, photometric="minisblack", metadata=metadata)
