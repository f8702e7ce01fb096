"""A dataset from CIFAR-10's official archive, its folder, or any image-folder tree or archive;
decoded once into a cache, with what it is (``DataInfo``: classes, image side, channel
statistics).

Sources, in order: the ``data`` argument (``--data``), ``$NAS_DATA``, the official archive
in the cache folder, a download of it. A source may ask for its images resized
(``with_resize``: ``--resize SIDE``). Decoded images are cached as uint8 ``.npy`` arrays under
``$NAS_CACHE_DIR`` (default ``~/.cache/nas``) in ``images-<checksum>[-<side>px]/``, keyed by the
source's checksum, with ``meta.json`` (classes, side, counts, mean and std of the training
images), so a second run starts at once. Train and test arrays are separate files: the
search path (``load_search``) never opens the test file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluators.images import CIFAR10_CLASSES, DataError, channel_stats, chunks, decode_into
from searchspace import files

__all__ = ["DataError", "DataInfo", "Split", "load_search", "load_final", "data_info",
           "cache_dir", "resolve_source", "fingerprint", "with_resize", "validation_size",
           "CLASSES", "MEAN", "STD"]

CLASSES = CIFAR10_CLASSES
MEAN = (0.4914, 0.4822, 0.4465)  # official CIFAR-10's training images: a Split made by hand
STD = (0.2470, 0.2435, 0.2616)
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
_QUIET_BYTES = 1 << 20  # a source this small decodes in under a second: no decoding line
_RESIZE = re.compile(r"(.*)\?resize=(\d{1,9})")
MAX_SIDE = 4096  # pixels a side: far past any image a CNN here takes
VAL_SHARE = 0.1  # a count of validation images is capped at this share of the training images
VAL_PER_CLASS = 10  # ...or at this many a class, when that is more (at most half of them)


@dataclass(frozen=True)
class DataInfo:
    """What a dataset is: its classes (index order), image side, channel statistics, sizes."""

    classes: tuple[str, ...]
    side: int  # pixels; every image is side x side
    mean: tuple[float, float, float]  # per channel, of the training images, in [0, 1]
    std: tuple[float, float, float]
    train: int  # training images (the search's split is cut from them)
    test: int
    source: str  # the path it was read from (``?resize=N`` when resized)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def words(self) -> str:
        """``"4 classes, 64x64 pixels, 1,200 training and 400 test images"``."""
        return (f"{self.num_classes} classes, {self.side}x{self.side} pixels, "
                f"{self.train:,} training and {self.test:,} test images")


@dataclass(frozen=True)
class Split:
    """Images (N, 3, H, W) uint8 and labels (N,) int64 for training and for scoring."""

    train_x: np.ndarray
    train_y: np.ndarray
    eval_x: np.ndarray
    eval_y: np.ndarray
    eval_name: str  # "val" (search) or "test" (final)
    source: str
    info: DataInfo | None = None  # None: made by hand, CIFAR-10's statistics

    @property
    def mean(self) -> tuple[float, ...]:
        return self.info.mean if self.info else MEAN

    @property
    def std(self) -> tuple[float, ...]:
        return self.info.std if self.info else STD

    @property
    def num_classes(self) -> int:
        return self.info.num_classes if self.info else int(self.train_y.max()) + 1


def cache_dir() -> Path:
    """Where decoded arrays and the downloaded archive live."""
    return files.cache_dir()


def load_search(data: str | Path | None = None, val_size: float = 5000, seed: int = 0) -> Split:
    """Train/validation split of the training images (CIFAR-10: 45,000 / 5,000).

    ``val_size``: a count (at most 10% of the training images, or 10 a class when that is
    more) or a fraction (under 1). Stratified and seeded: the same ``seed`` gives the same split
    on every machine. The test images are not read.
    """
    folder, info = _opened(data)
    y = np.load(folder / "train_y.npy")
    n = validation_size(val_size, len(y), info.num_classes)
    if not 0 < n < len(y):
        raise DataError(f"{info.source}: {len(y)} training images are too few to hold out "
                        "validation images from")
    train_idx, val_idx = _stratified(y, n, seed)
    x, val_x = _rows(folder / "train_x.npy", train_idx, val_idx)
    return Split(x, y[train_idx], val_x, y[val_idx], "val", str(folder), info)


def load_final(data: str | Path | None = None) -> Split:
    """All training images and the test images: for final training and reported numbers."""
    folder, info = _opened(data)
    x, y = np.load(folder / "train_x.npy"), np.load(folder / "train_y.npy")
    tx, ty = np.load(folder / "test_x.npy"), np.load(folder / "test_y.npy")
    return Split(x, y, tx, ty, "test", str(folder), info)


def data_info(data: str | Path | None = None) -> DataInfo:
    """What ``data`` is (decoded into the cache first if it is not there yet)."""
    return _opened(data)[1]


def validation_size(asked: float, n: int, classes: int) -> int:
    """Validation images out of ``n`` training images: a fraction (``asked`` < 1), or a count
    capped at 10% of them (but not below 10 a class); never more than half."""
    if asked < 1:
        return min(max(round(asked * n), classes), n // 2)
    if asked != int(asked):
        raise DataError(f"val_size {asked}: a count of images is a whole number (a fraction "
                        "is under 1)")
    return min(int(asked), max(round(VAL_SHARE * n), VAL_PER_CLASS * classes), n // 2)


def _stratified(y: np.ndarray, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    per_class = np.full(len(classes), val_size // len(classes))
    per_class[: val_size - per_class.sum()] += 1
    val = []
    for c, n in zip(classes, per_class):
        idx = np.flatnonzero(y == c)
        val.append(rng.choice(idx, size=min(n, len(idx)), replace=False))
    val_idx = np.sort(np.concatenate(val))
    mask = np.ones(len(y), bool)
    mask[val_idx] = False
    return np.flatnonzero(mask), val_idx


# --- where the data comes from --------------------------------------------------------------


def with_resize(data: str | Path | None, side: int | None) -> str | None:
    """The source ``data`` with its images resized to ``side`` (``--resize``): the shorter side
    to ``side``, then the centre square. A string, so that a run's config keeps it."""
    if side is None:
        return None if data is None else str(data)
    _check_side(side)
    return f"{resolve_source(data)}?resize={side}"


def _check_side(side: int) -> int:
    if not 0 < side <= MAX_SIDE:
        raise DataError(f"--resize {side}: give a side from 1 to {MAX_SIDE} pixels")
    return side


def _parts(data: str | Path) -> tuple[str, int | None]:
    m = _RESIZE.fullmatch(str(data))
    if m and not Path(data).exists():
        return m.group(1), _check_side(int(m.group(2)))
    return str(data), None


def resolve_source(data: str | Path | None) -> Path:
    """The path to read: ``data``, ``$NAS_DATA``, the cached official archive, or a download."""
    return _source(data)[0]


def _source(data: str | Path | None) -> tuple[Path, int | None]:
    if data is None and os.environ.get("NAS_DATA"):
        data = os.environ["NAS_DATA"]
    if data is not None:
        text, resize = _parts(data)
        path = Path(text).expanduser()
        if not path.exists():
            raise DataError(f"{text}: no such file or folder")
        return path, resize
    official = cache_dir() / "cifar-10-python.tar.gz"
    if not official.is_file():
        _download(official)
    return official, None


def _download(target: Path) -> None:
    from tqdm import tqdm

    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_suffix(".part")
    try:
        with urllib.request.urlopen(OFFICIAL_URL, timeout=15) as response, open(part, "wb") as f:
            total = int(response.headers.get("Content-Length", 0)) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="CIFAR-10") as bar:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    bar.update(len(chunk))
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise DataError(f"cannot download CIFAR-10 ({exc.__class__.__name__}: {exc}); pass "
                        "--data PATH (the official archive, its folder, or an image-folder "
                        "tree/archive) or set NAS_DATA") from None
    if _md5(part) != OFFICIAL_MD5:
        part.unlink(missing_ok=True)
        raise DataError("the downloaded CIFAR-10 archive failed its checksum; try again")
    part.rename(target)


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


# --- the cache ------------------------------------------------------------------------------


def fingerprint(data: str | Path | None) -> str:
    """A short checksum of the data source that ``data`` resolves to, and of how it is read
    (for result caches: ``-own`` since images are normalised by their own statistics)."""
    path, resize = _source(data)
    return _fingerprint(path) + (f"-{resize}px" if resize else "") + "-own"


def _fingerprint(path: Path) -> str:
    """sha256 of an archive's bytes, or of a folder's listing (paths, sizes, times)."""
    try:
        return _checksum(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _checksum(path: Path) -> str:
    h = hashlib.sha256()
    if path.is_file():
        with open(path, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
    else:
        for p in sorted(path.rglob("*")):
            if p.is_file():
                st = p.stat()
                h.update(f"{p.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _opened(data: str | Path | None) -> tuple[Path, DataInfo]:
    """The cache folder of ``data`` (decoded now if it is new) and what it holds."""
    source, resize = _source(data)
    folder = cache_dir() / f"images-{_fingerprint(source)}" \
        f"{f'-{resize}px' if resize else ''}"
    if not (folder / "meta.json").is_file():
        _decode(source, folder, resize)
    meta = json.loads((folder / "meta.json").read_text())
    shown = f"{source}?resize={resize}" if resize else str(source)
    return folder, DataInfo(tuple(meta["classes"]), meta["side"], tuple(meta["mean"]),
                            tuple(meta["std"]), meta["train"], meta["test"], shown)


def _decode(source: Path, folder: Path, resize: int | None) -> None:
    loud = _size(source) > _QUIET_BYTES  # seconds of silence otherwise
    if loud:
        print(f"decoding {source} into uint8 arrays under {folder}, once: later runs read "
              "them", file=sys.stderr, flush=True)
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        meta = decode_into(source, tmp, resize, progress=loud)
        mean, std = channel_stats(tmp / "train_x.npy")
        meta = {"source": str(source), "resize": resize, **meta, "mean": mean, "std": std}
        (tmp / "meta.json").write_text(json.dumps(meta))
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"cannot write the data cache {tmp} ({exc.strerror or exc}); set "
                        "NAS_CACHE_DIR to a writable folder") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        tmp.rename(folder)
    except OSError:  # another process cached it first
        shutil.rmtree(tmp, ignore_errors=True)


def _size(path: Path) -> int:
    """Bytes in an archive, or in a folder's files."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _rows(path: Path, *picks: np.ndarray) -> list[np.ndarray]:
    """The rows ``picks`` (sorted indices) of a cached image array, each set in one new array,
    read a chunk at a time: a split costs its own images, never the file twice."""
    out: list[np.ndarray] = []
    filled = [0] * len(picks)
    for start, rows in chunks(path):
        if not out:
            out = [np.empty((len(p), *rows.shape[1:]), np.uint8) for p in picks]
        for i, p in enumerate(picks):
            lo, hi = np.searchsorted(p, [start, start + len(rows)])
            out[i][filled[i]:filled[i] + hi - lo] = rows[p[lo:hi] - start]
            filled[i] += hi - lo
    return out
