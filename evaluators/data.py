"""CIFAR-10 from the official archive, its folder, or an image-folder tree or archive; cached.

Sources, in order: the ``data`` argument (``--data``), ``$NAS_DATA``, the official archive
in the cache folder, a download of it. Decoded images are cached as uint8 arrays under
``$NAS_CACHE_DIR`` (default ``~/.cache/nas``), keyed by the source's checksum, so a second
run starts at once. Train and test arrays are separate files: the search path
(``load_search``) never opens the test file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import sys
import tarfile
import urllib.request
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from searchspace import files

__all__ = ["DataError", "Split", "load_search", "load_final", "cache_dir", "resolve_source",
           "fingerprint", "CLASSES", "MEAN", "STD"]

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")
MEAN = (0.4914, 0.4822, 0.4465)  # per-channel mean of the official training images
STD = (0.2470, 0.2435, 0.2616)
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm")
_QUIET_BYTES = 1 << 20  # a source this small decodes in under a second: no decoding line


class DataError(Exception):
    """Data that cannot be read: one line that says what to do."""


@dataclass(frozen=True)
class Split:
    """Images (N, 3, H, W) uint8 and labels (N,) int64 for training and for scoring."""

    train_x: np.ndarray
    train_y: np.ndarray
    eval_x: np.ndarray
    eval_y: np.ndarray
    eval_name: str  # "val" (search) or "test" (final)
    source: str


def cache_dir() -> Path:
    """Where decoded arrays and the downloaded archive live."""
    return files.cache_dir()


def load_search(data: str | Path | None = None, val_size: int = 5000, seed: int = 0) -> Split:
    """Train/validation split of the training images (default 45,000 / 5,000).

    Stratified and seeded: the same ``seed`` gives the same split on every machine.
    The test images are not read.
    """
    folder = _cached(resolve_source(data))
    x, y = _load_arrays(folder, "train")
    if not 0 < val_size < len(y):
        raise DataError(f"validation size {val_size} must be between 0 and {len(y)}")
    train_idx, val_idx = _stratified(y, val_size, seed)
    return Split(x[train_idx], y[train_idx], x[val_idx], y[val_idx], "val", str(folder))


def load_final(data: str | Path | None = None) -> Split:
    """All training images and the test images: for final training and reported numbers."""
    folder = _cached(resolve_source(data))
    x, y = _load_arrays(folder, "train")
    tx, ty = _load_arrays(folder, "test")
    return Split(x, y, tx, ty, "test", str(folder))


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


def resolve_source(data: str | Path | None) -> Path:
    """The path to read: ``data``, ``$NAS_DATA``, the cached official archive, or a download."""
    if data is None and os.environ.get("NAS_DATA"):
        data = os.environ["NAS_DATA"]
    if data is not None:
        path = Path(data).expanduser()
        if not path.exists():
            raise DataError(f"{data}: no such file or folder")
        return path
    official = cache_dir() / "cifar-10-python.tar.gz"
    if not official.is_file():
        _download(official)
    return official


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
    """A short checksum of the data source that ``data`` resolves to (for result caches)."""
    return _fingerprint(resolve_source(data))


def _fingerprint(path: Path) -> str:
    """sha256 of an archive's bytes, or of a folder's listing (paths, sizes, times)."""
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


def _cached(source: Path) -> Path:
    folder = cache_dir() / f"cifar10-{_fingerprint(source)}"
    if (folder / "meta.json").is_file():
        return folder
    if _size(source) > _QUIET_BYTES:  # seconds of silence otherwise (10 for the JPEG archive)
        print(f"decoding {source} into uint8 arrays under {folder}, once: later runs read "
              "them", file=sys.stderr, flush=True)
    arrays = _decode(source)
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", array)
        meta = {"source": str(source), "train": len(arrays["train_y"]),
                "test": len(arrays["test_y"])}
        (tmp / "meta.json").write_text(json.dumps(meta))
    except OSError as exc:
        raise DataError(f"cannot write the data cache {tmp} ({exc.strerror or exc}); set "
                        "NAS_CACHE_DIR to a writable folder") from None
    try:
        tmp.rename(folder)
    except OSError:  # another process cached it first
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()
    return folder


def _size(path: Path) -> int:
    """Bytes in an archive, or in a folder's files."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _load_arrays(folder: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    return np.load(folder / f"{part}_x.npy"), np.load(folder / f"{part}_y.npy")


# --- decoding -------------------------------------------------------------------------------


def _decode(source: Path) -> dict[str, np.ndarray]:
    try:
        if source.is_dir():
            return _decode_folder(source)
        name = source.name.lower()
        if name.endswith(".zip"):
            with zipfile.ZipFile(source) as z:
                return _decode_members(source, ((n, z.read(n)) for n in z.namelist()
                                                if not n.endswith("/")))
        if name.endswith((".tar", ".tar.gz", ".tgz")):
            with tarfile.open(source) as t:
                return _decode_members(source, _tar_members(t))
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as exc:
        detail = " ".join(str(exc).split())[:160]
        raise DataError(f"{source}: corrupt or truncated archive ({detail})") from None
    raise DataError(f"{source}: not a CIFAR-10 source (expected a .tar.gz/.tar/.zip archive "
                    "or a folder)")


def _tar_members(t: tarfile.TarFile) -> Iterator[tuple[str, bytes]]:
    for m in t:
        if m.isfile():
            f = t.extractfile(m)
            if f is not None:
                yield m.name, f.read()


def _decode_folder(root: Path) -> dict[str, np.ndarray]:
    def files() -> Iterator[tuple[str, bytes]]:
        for p in sorted(root.rglob("*")):
            if p.is_file() and (p.suffix.lower() in _IMAGE_SUFFIXES or _is_batch(p.name)):
                yield str(p.relative_to(root)), p.read_bytes()
    return _decode_members(root, files())


def _is_batch(name: str) -> bool:
    return name.startswith("data_batch_") or name == "test_batch"


def _decode_members(source: Path, members: Iterator[tuple[str, bytes]]) -> dict[str, np.ndarray]:
    """Official pickled batches, or images under .../train/<class>/ and .../test/<class>/."""
    batches: dict[str, bytes] = {}
    images: dict[str, list[tuple[str, str, bytes]]] = {"train": [], "test": []}
    for name, blob in members:
        parts = Path(name).parts
        if _is_batch(parts[-1]):
            batches[parts[-1]] = blob
        elif len(parts) >= 3 and parts[-3] in images and name.lower().endswith(_IMAGE_SUFFIXES):
            images[parts[-3]].append((parts[-2], name, blob))
    if batches:
        return _from_batches(source, batches)
    if images["train"] and images["test"]:
        return _from_images(source, images)
    raise DataError(f"{source}: wrong layout: expected the official cifar-10-batches-py files "
                    "or images under train/<class>/ and test/<class>/")


def _from_batches(source: Path, batches: dict[str, bytes]) -> dict[str, np.ndarray]:
    train = sorted(n for n in batches if n.startswith("data_batch_"))
    if not train or "test_batch" not in batches:
        raise DataError(f"{source}: incomplete official archive (needs data_batch_* and "
                        "test_batch)")
    out = {}
    for part, names in (("train", train), ("test", ["test_batch"])):
        xs, ys = [], []
        for n in names:
            try:
                d = pickle.loads(batches[n], encoding="bytes")  # noqa: S301 - official format
                xs.append(np.asarray(d[b"data"], np.uint8).reshape(-1, 3, 32, 32))
                ys.append(np.asarray(d[b"labels"], np.int64))
            except Exception as exc:  # any unpickling failure means a damaged batch
                raise DataError(f"{source}: {n} is damaged ({exc.__class__.__name__})") from None
        out[f"{part}_x"], out[f"{part}_y"] = np.concatenate(xs), np.concatenate(ys)
    return out


def _decode_image(where: str, blob: bytes, shape: tuple[int, ...] | None) -> np.ndarray:
    """One image as an (H, W, 3) uint8 array; DataError naming it when it is damaged, a
    decompression bomb (Pillow's pixel limit, its warning included), or not ``shape``
    (checked from the header, before decoding)."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(blob))
            if shape is not None and img.size != (shape[1], shape[0]):
                raise DataError(f"{where}: {img.size[0]}x{img.size[1]} pixels, but others are "
                                f"{shape[1]}x{shape[0]}")
            return np.asarray(img.convert("RGB"))
        except DataError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise DataError(f"{where}: refused as a possible decompression bomb "
                            f"({_one_line(exc)})") from None
        except Exception as exc:  # Pillow's decoders raise OSError, SyntaxError, ValueError...
            raise DataError(f"{where}: not a readable image ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or exc.__class__.__name__


def _from_images(source: Path, images: dict[str, list[tuple[str, str, bytes]]]
                 ) -> dict[str, np.ndarray]:
    classes = sorted({c for c, _, _ in images["train"]})
    index = {c: i for i, c in enumerate(classes)}
    out = {}
    for part, items in images.items():
        xs, ys, shape = [], [], None
        for cls, name, blob in sorted(items, key=lambda t: t[1]):
            if cls not in index:
                raise DataError(f"{source}: {name}: class {cls!r} has no training images")
            img = _decode_image(f"{source}: {name}", blob, shape)
            shape = img.shape
            xs.append(img)
            ys.append(index[cls])
        out[f"{part}_x"] = np.ascontiguousarray(np.stack(xs).transpose(0, 3, 1, 2))
        out[f"{part}_y"] = np.asarray(ys, np.int64)
    return out
