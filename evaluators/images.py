"""A data source decoded into uint8 arrays on disk, one image at a time.

Sources: the official CIFAR-10 batches, or images under ``.../train/<class>/`` and
``.../test/<class>/`` in a folder, a .tar(.gz) or a .zip. Images are appended to ``.npy`` files
as they are decoded, so decoding 20,000 images of 96x96 holds one of them at a time, not all
of them twice. Every image of a dataset has one size (or ``resize`` makes it so).
"""

from __future__ import annotations

import contextlib
import errno
import io
import pickle
import sys
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

__all__ = ["decode_into", "channel_stats", "chunks", "CIFAR10_CLASSES", "DataError"]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".gif", ".webp", ".tif", ".tiff")
_WRITING = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)  # errors of the cache's disk
_CHUNK_BYTES = 16 << 20  # read a cached array this much at a time


class DataError(Exception):
    """Data that cannot be read: one line that says what to do."""


Member = tuple[str, Callable[[], bytes]]  # a file's name in the source, and how to read it


def decode_into(source: Path, folder: Path, resize: int | None, progress: bool) -> dict:
    """Decode ``source`` into ``folder`` (train_x.npy, train_y.npy, test_x.npy, test_y.npy);
    returns what meta.json records: the classes, the image side, the counts."""
    try:
        members = _members(source)
        batches = {Path(n).name: read for n, read in members if _is_batch(Path(n).name)}
        if batches:
            return _from_batches(source, folder, batches, resize)
        return _from_images(source, folder, _image_parts(source, members), resize, progress)
    except OSError as exc:
        if getattr(exc, "errno", None) in _WRITING:
            raise  # the cache's disk, not the source: the caller says so
        what = "cannot be read" if isinstance(exc, PermissionError) else \
            "corrupt or truncated archive"
        raise DataError(f"{source}: {what} ({_one_line(exc)})") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{source}: corrupt or truncated archive ({_one_line(exc)})") from None


def chunks(path: Path) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) of a uint8 .npy array, read in order a few MiB at a time: neither
    held whole nor mapped (a mapped file's pages count as the process's memory)."""
    with open(path, "rb") as f:
        header = np.lib.format.read_array_header_1_0 \
            if np.lib.format.read_magic(f) == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, _ = header(f)
        row = int(np.prod(shape[1:], dtype=np.int64))
        step = max(1, _CHUNK_BYTES // max(row, 1))
        for start in range(0, shape[0], step):
            n = min(step, shape[0] - start)
            yield start, np.frombuffer(f.read(n * row), np.uint8).reshape(n, *shape[1:])


def channel_stats(path: Path) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of the uint8 images (N, C, H, W) in the .npy
    file ``path``, in [0, 1]."""
    total, squares, count = 0, 0, 0  # exact integer sums of pixel values and their squares
    for _, x in chunks(path):
        wide = x.astype(np.uint32)
        total = total + wide.sum(axis=(0, 2, 3), dtype=np.int64)
        squares = squares + np.square(wide).sum(axis=(0, 2, 3), dtype=np.int64)
        count += len(x) * x.shape[2] * x.shape[3]
    mean = total / count / 255.0
    squares = squares / 255.0 ** 2
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
    return [round(float(m), 4) for m in mean], [round(float(s), 4) or 1.0 for s in std]


# --- what a source holds ----------------------------------------------------------------


def _members(source: Path) -> list[Member]:
    """Every file of a folder or an archive, read lazily where the format allows."""
    if source.is_dir():
        return [(str(p.relative_to(source)), p.read_bytes) for p in sorted(source.rglob("*"))
                if p.is_file() and (p.suffix.lower() in _IMAGE_SUFFIXES or _is_batch(p.name))]
    name = source.name.lower()
    if name.endswith(".zip"):
        z = zipfile.ZipFile(source)
        return [(n, (lambda n=n: z.read(n))) for n in z.namelist() if not n.endswith("/")]
    if name.endswith((".tar", ".tar.gz", ".tgz")):
        with tarfile.open(source) as t:  # a compressed tar reads in order: its bytes, kept
            return [(n, (lambda b=blob: b)) for n, blob in _tar_members(t)]
    raise DataError(f"{source}: not an image source (expected a folder, a .tar/.tar.gz or "
                     "a .zip)")


def _tar_members(t: tarfile.TarFile) -> Iterator[tuple[str, bytes]]:
    for m in t:
        if m.isfile() and (m.name.lower().endswith(_IMAGE_SUFFIXES)
                           or _is_batch(Path(m.name).name)):
            f = t.extractfile(m)
            if f is not None:
                yield m.name, f.read()


def _is_batch(name: str) -> bool:
    return name.startswith("data_batch_") or name == "test_batch"


def _image_parts(source: Path, members: list[Member]) -> dict[str, list[tuple[str, Member]]]:
    """(class, member) of every image under .../train/<class>/ and .../test/<class>/."""
    parts: dict[str, list[tuple[str, Member]]] = {"train": [], "test": []}
    for name, read in members:
        p = Path(name).parts
        if any(q.startswith(".") or q == "__MACOSX" for q in p):  # ._x.jpg, .ipynb_checkpoints
            continue
        if len(p) >= 3 and p[-3] in parts and name.lower().endswith(_IMAGE_SUFFIXES):
            parts[p[-3]].append((p[-2], (name, read)))
    if not parts["train"] or not parts["test"]:
        raise DataError(f"{source}: wrong layout: expected the official cifar-10-batches-py "
                         "files or images under train/<class>/ and test/<class>/")
    return {k: sorted(v, key=lambda item: item[1][0]) for k, v in parts.items()}


# --- the official batches -----------------------------------------------------------------


def _from_batches(source: Path, folder: Path, batches: dict[str, Callable[[], bytes]],
                  resize: int | None) -> dict:
    train = sorted(n for n in batches if n.startswith("data_batch_"))
    if not train or "test_batch" not in batches:
        raise DataError(f"{source}: incomplete official archive (needs data_batch_* and "
                         "test_batch)")
    counts, side = {}, resize or 32
    for part, names in (("train", train), ("test", ["test_batch"])):
        xs, ys = zip(*(_batch(source, n, batches[n]()) for n in names))
        with _appended(folder / f"{part}_x.npy", sum(map(len, xs)), side) as write:
            for x in xs:
                for img in x:
                    write(_resized(img.transpose(1, 2, 0), side) if side != 32
                          else img.transpose(1, 2, 0))
        np.save(folder / f"{part}_y.npy", np.concatenate(ys))
        counts[part] = sum(map(len, xs))
    return {"classes": list(CIFAR10_CLASSES), "side": side, **counts}


@contextlib.contextmanager
def _appended(path: Path, n: int, side: int):
    """``write(image)``: (side, side, 3) uint8 images appended to a new (n, 3, side, side)
    .npy file, in order."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False,
                                                 "shape": (n, 3, side, side)})
        yield lambda img: f.write(np.ascontiguousarray(img.transpose(2, 0, 1)).tobytes())


def _batch(source: Path, name: str, blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    try:
        d = pickle.loads(blob, encoding="bytes")  # noqa: S301 - the official format
        return (np.asarray(d[b"data"], np.uint8).reshape(-1, 3, 32, 32),
                np.asarray(d[b"labels"], np.int64))
    except Exception as exc:  # any unpickling failure means a damaged batch
        raise DataError(f"{source}: {name} is damaged ({exc.__class__.__name__})") from None


# --- image trees --------------------------------------------------------------------------


def _from_images(source: Path, folder: Path, parts: dict[str, list[tuple[str, Member]]],
                 resize: int | None, progress: bool) -> dict:
    classes = sorted({c for c, _ in parts["train"]})
    index = {c: i for i, c in enumerate(classes)}
    first = parts["train"][0][1]
    side = resize or _square_side(source, first)
    counts = {}
    for part, items in parts.items():
        y = np.empty(len(items), np.int64)
        with _appended(folder / f"{part}_x.npy", len(items), side) as write:
            for i, (cls, (name, read)) in enumerate(_shown(items, part, progress)):
                if cls not in index:
                    raise DataError(f"{source}: {name}: class {cls!r} has no training images")
                write(_image(f"{source}: {name}", read(), side, resize, first[0]))
                y[i] = index[cls]
        np.save(folder / f"{part}_y.npy", y)
        counts[part] = len(items)
    return {"classes": classes, "side": side, **counts}


def _shown(items: list, part: str, progress: bool):
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=f"decoding {part}", unit="img", file=sys.stderr, leave=False,
                mininterval=1.0)


def _square_side(source: Path, member: Member) -> int:
    """The side of the first training image; DataError when it is not square."""
    from PIL import Image

    name, read = member
    w, h = _opened(f"{source}: {name}", read(), Image.open).size
    if w != h:
        raise DataError(f"{source}: {name}: {w}x{h} pixels, not square; pass --resize SIDE "
                         "to resize every image (its shorter side, then a centre crop)")
    return w


def _image(where: str, blob: bytes, side: int, resize: int | None, first: str) -> np.ndarray:
    """One image as (side, side, 3) uint8; DataError naming it when it is damaged, a
    decompression bomb, or (without ``resize``) of another size than ``first``, the first."""
    from PIL import Image

    img = _opened(where, blob, Image.open)
    if resize is None and img.size != (side, side):
        raise DataError(f"{where}: {img.size[0]}x{img.size[1]} pixels, but {first} is "
                         f"{side}x{side}; pass --resize SIDE to resize every image")
    rgb = _opened(where, img, lambda i: i.convert("RGB"))  # grayscale, palette, alpha: RGB
    return _resized(np.asarray(rgb), side) if resize else np.asarray(rgb)


def _opened(where: str, thing, how):
    """``how(thing)`` with Pillow's errors (and its bomb warning) as one DataError line."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return how(io.BytesIO(thing) if isinstance(thing, bytes) else thing)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise DataError(f"{where}: refused as a possible decompression bomb "
                             f"({_one_line(exc)})") from None
        except Exception as exc:  # Pillow's decoders raise OSError, SyntaxError, ValueError...
            raise DataError(f"{where}: not a readable image ({_one_line(exc)})") from None


def _resized(rgb: np.ndarray, side: int) -> np.ndarray:
    """The shorter side to ``side``, then the centre square: no image is stretched."""
    from PIL import Image, ImageOps

    img = Image.fromarray(rgb)
    if img.size == (side, side):
        return rgb
    return np.asarray(ImageOps.fit(img, (side, side), Image.Resampling.BICUBIC))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or exc.__class__.__name__
