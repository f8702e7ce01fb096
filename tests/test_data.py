"""CIFAR-10 sources: official batches, image folders and archives, the cache, the split."""

from __future__ import annotations

import io
import pickle
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evaluators.data import DataError, load_final, load_search


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("NAS_DATA", raising=False)


def _images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    x[:, 0] = (y * 25)[:, None, None]  # a class signal in the red channel
    return x, y


def official_archive(path: Path, per_batch: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """A small archive in the official layout: cifar-10-batches-py/data_batch_1..5, test_batch."""
    xs, ys = [], []
    with tarfile.open(path, "w:gz") as tar:
        for name, seed in [(f"data_batch_{i}", i) for i in range(1, 6)] + [("test_batch", 9)]:
            x, y = _images(per_batch, seed)
            if name != "test_batch":
                xs.append(x)
                ys.append(y)
            blob = pickle.dumps({b"data": x.reshape(len(x), -1), b"labels": list(map(int, y))})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return np.concatenate(xs), np.concatenate(ys)


def image_tree(root: Path, per_class: int = 6, fmt: str = "PNG") -> None:
    """train/<class>/*.png and test/<class>/*.png, classes in alphabetical order."""
    for part, seed in (("train", 1), ("test", 2)):
        x, y = _images(per_class * 10, seed)
        for i, (img, label) in enumerate(zip(x, y)):
            folder = root / "cifar" / part / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img.transpose(1, 2, 0)).save(folder / f"{i:04d}.png", fmt)


def test_official_archive_and_its_folder(tmp_path) -> None:
    archive = tmp_path / "cifar-10-python.tar.gz"
    x, y = official_archive(archive)
    final = load_final(archive)
    assert final.train_x.shape == (200, 3, 32, 32) and final.eval_x.shape == (40, 3, 32, 32)
    assert np.array_equal(final.train_x, x) and np.array_equal(final.train_y, y)
    with tarfile.open(archive) as t:
        t.extractall(tmp_path / "extracted", filter="data")
    again = load_final(tmp_path / "extracted" / "cifar-10-batches-py")
    assert np.array_equal(again.train_x, x)


def test_image_folder_tree_tar_and_zip(tmp_path) -> None:
    image_tree(tmp_path / "tree")
    tree = load_final(tmp_path / "tree")
    assert tree.train_x.shape == (60, 3, 32, 32) and sorted(set(tree.eval_y)) == list(range(10))
    tar_path = tmp_path / "imgs.tar"
    with tarfile.open(tar_path, "w") as t:
        t.add(tmp_path / "tree" / "cifar", arcname="cifar")
    zip_path = tmp_path / "imgs.zip"
    with zipfile.ZipFile(zip_path, "w") as z:
        for p in sorted((tmp_path / "tree").rglob("*.png")):
            z.write(p, p.relative_to(tmp_path / "tree"))
    for source in (tar_path, zip_path):
        other = load_final(source)
        assert np.array_equal(other.train_x, tree.train_x)
        assert np.array_equal(other.eval_y, tree.eval_y)


def test_split_is_stratified_seeded_and_disjoint(tmp_path) -> None:
    archive = tmp_path / "c.tar.gz"
    official_archive(archive, per_batch=100)
    a, b = load_search(archive, val_size=50, seed=1), load_search(archive, val_size=50, seed=1)
    assert np.array_equal(a.eval_x, b.eval_x)
    assert list(np.bincount(a.eval_y)) == [5] * 10
    assert len(a.train_y) == 450
    c = load_search(archive, val_size=50, seed=2)
    assert not np.array_equal(a.eval_x, c.eval_x)
    train_rows = {r.tobytes() for r in a.train_x}
    assert not any(r.tobytes() in train_rows for r in a.eval_x)


def test_search_path_never_opens_the_test_images(tmp_path) -> None:
    archive = tmp_path / "c.tar.gz"
    official_archive(archive)
    load_final(archive)  # make the cache, test images included
    opened: list[str] = []

    def hook(event: str, args: tuple) -> None:
        if event == "open" and isinstance(args[0], (str, Path)):
            opened.append(str(args[0]))
    sys.addaudithook(hook)
    split = load_search(archive, val_size=20)
    seen = list(opened)
    assert any("train_x.npy" in p for p in seen)
    assert not any("test" in Path(p).name for p in seen)
    assert split.eval_name == "val" and len(split.eval_y) == 20


def test_cache_is_reused_and_keyed_by_content(tmp_path) -> None:
    archive = tmp_path / "c.tar.gz"
    official_archive(archive)
    load_final(archive)
    cache = tmp_path / "cache"
    folders = list(cache.glob("images-*"))
    assert len(folders) == 1 and (folders[0] / "train_x.npy").is_file()
    load_final(archive)
    assert len(list(cache.glob("images-*"))) == 1
    official_archive(archive, per_batch=30)  # new content, new key
    assert len(load_final(archive).train_y) == 150
    assert len(list(cache.glob("images-*"))) == 2


def test_first_decode_says_so_once(tmp_path, capsys) -> None:
    """Seconds of decoding are announced (what, where the cache goes, once); a cached source
    and a tiny one, decoded at once, stay quiet."""
    small, large = tmp_path / "s.tar.gz", tmp_path / "l.tar.gz"
    official_archive(small)
    official_archive(large, per_batch=120)  # random pixels: over 1 MB compressed
    assert large.stat().st_size > 1 << 20
    load_search(large, val_size=10)
    err = capsys.readouterr().err.strip().splitlines()
    cache = next((tmp_path / "cache").glob("images-*"))
    assert len(err) == 1 and f"decoding {large}" in err[0]
    assert str(cache) in err[0] and "once" in err[0]
    load_final(large)
    load_search(small, val_size=10)
    assert capsys.readouterr().err == ""


def test_bad_sources_give_one_clear_line(tmp_path) -> None:
    archive = tmp_path / "c.tar.gz"
    official_archive(archive)
    truncated = tmp_path / "t.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not an archive at all" * 100)
    empty = tmp_path / "empty"
    (empty / "stuff").mkdir(parents=True)
    (empty / "stuff" / "a.txt").write_text("hello")
    cases = [(tmp_path / "missing.tar.gz", "no such file"),
             (truncated, "corrupt or truncated archive"),
             (junk, "corrupt or truncated archive"),
             (empty, "wrong layout")]
    for source, needle in cases:
        with pytest.raises(DataError) as info:
            load_search(source, val_size=10)
        assert needle in str(info.value) and "\n" not in str(info.value)


def test_real_jpeg_archive(cifar_jpeg, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NAS_CACHE_DIR", str(Path.home() / ".cache" / "nas"))
    split = load_search(cifar_jpeg)
    assert split.train_x.shape == (45000, 3, 32, 32) and split.eval_x.shape == (5000, 3, 32, 32)
    sample = split.train_x[::9]
    mean = sample.reshape(len(sample), 3, -1).mean((0, 2)) / 255
    assert np.allclose(mean, (0.491, 0.481, 0.444), atol=0.01)
    assert list(np.bincount(split.eval_y)) == [500] * 10
