"""A user's own images, end to end: two datasets made from the real CIFAR-10 JPEG copy (4
classes upscaled to 64x64 in a folder; 2 classes in grayscale PNG in a .tar.gz) are searched,
trained, scaled, exported and compared; a network made for other images is transferred; a
mismatch is one line."""

from __future__ import annotations

import importlib.util
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import searchspace
from evaluators import DataError, ProxyEvaluator
from evaluators.data import MEAN, data_info, load_search, with_resize
from evaluators.recipe import load_profile
from nas.cli import main

FOUR = ("cat", "dog", "ship", "truck")
TWO = ("cat", "ship")


def _make(archive: Path, root: Path, classes: tuple[str, ...], counts: dict[str, int],
          convert) -> None:
    """The first ``counts[part]`` images of each class of ``archive``, ``convert``ed and saved
    under root/part/class/."""
    seen: dict[tuple[str, str], int] = {}
    with tarfile.open(archive) as t:
        for m in t:
            parts = Path(m.name).parts
            if not m.isfile() or parts[-2] not in classes:
                continue
            key = (parts[-3], parts[-2])
            seen[key] = seen.get(key, 0) + 1
            if seen[key] > counts[parts[-3]]:
                continue
            img, suffix = convert(Image.open(io.BytesIO(t.extractfile(m).read())))
            folder = root / parts[-3] / parts[-2]
            folder.mkdir(parents=True, exist_ok=True)
            img.save(folder / f"{Path(m.name).stem}{suffix}")


@pytest.fixture(scope="module")
def data(cifar_jpeg, tmp_path_factory) -> dict[str, Path]:
    """{"four": a folder of 4 classes at 64x64, "two": a .tar.gz of 2 grayscale classes,
    "cache": the image cache both share}."""
    base = tmp_path_factory.mktemp("own")
    _make(cifar_jpeg, base / "four", FOUR, {"train": 60, "test": 20},
          lambda i: (i.resize((64, 64), Image.Resampling.BICUBIC), ".jpg"))
    _make(cifar_jpeg, base / "gray" / "two", TWO, {"train": 100, "test": 25},
          lambda i: (i.convert("L"), ".png"))
    with tarfile.open(base / "two.tar.gz", "w:gz") as t:
        t.add(base / "gray" / "two", arcname="two")
    return {"four": base / "four", "two": base / "two.tar.gz", "cache": base / "cache"}


@pytest.fixture(autouse=True)
def _cache(data, monkeypatch) -> None:
    monkeypatch.setenv("NAS_CACHE_DIR", str(data["cache"]))
    monkeypatch.delenv("NAS_DATA", raising=False)


def _nas(capsys, *argv) -> tuple[str, str]:
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    got = capsys.readouterr()
    return got.out, got.err


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_data_decides_classes_side_and_statistics(data) -> None:
    four, two = data_info(data["four"]), data_info(data["two"])
    assert four.classes == FOUR and four.side == 64 and (four.train, four.test) == (240, 80)
    assert two.classes == TWO and two.side == 32 and (two.train, two.test) == (200, 50)
    assert two.mean[0] == two.mean[1] == two.mean[2] and two.mean != MEAN  # gray, own stats
    split = load_search(data["four"])  # 5,000 asked, 10% of 240 given: 10 a class
    assert len(split.eval_y) == 40 and list(np.bincount(split.eval_y)) == [10] * 4
    assert split.train_x.shape[1:] == (3, 64, 64)


def test_search_train_scale_export_compare_at_64_pixels(data, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    _nas(capsys, "search", "--budget", "80M-madds", "--data", data["four"], "--trials", 2,
         "--baselines", "resnet20", "--out", run)
    assert json.loads((run / "config.json").read_text())["shape"] == [4, 64]
    base = searchspace.Genotype.from_yaml(run / "base.yaml")
    best = searchspace.Genotype.from_yaml(run / "best.yaml")
    assert (base.num_classes, base.resolution) == (4, 64) and best.num_classes == 4
    assert json.loads((run / "summary.json").read_text())["images"]["classes"] == list(FOUR)
    report = (run / "report.md").read_text()
    assert "(4 classes, 64x64 pixels, 240 training images)" in report
    assert f"--data {data['four']}" in report and "over all 240 training images" in report
    rows = json.loads((run / "compare" / "results.json").read_text())["rows"]
    resnet = {r["name"]: r for r in rows}["resnet20@base budget"]  # 162M at 64 px: shrunk
    assert resnet["madds"] <= 5e6 and resnet["resolution"] < 64
    model = _module(run / "model.py")
    assert model.CLASSES == FOUR and model.NUM_CLASSES == 4 and model.MEAN != MEAN
    net = model.build_model()
    assert net(torch.zeros(1, 3, model.RESOLUTION, model.RESOLUTION)).shape == (1, 4)
    words = " ".join((run / "model.py").read_text().split())
    assert "Classes (4, output index order): cat, dog, ship, truck." in words
    assert "The 64x64 images it was trained on must be resized first" in words

    out, err = _nas(capsys, "train", run / "base.yaml", "--data", data["four"],
                    "-o", tmp_path / "ck.pt", "--json")
    assert "transferred" not in err and json.loads(out)["classes"] == list(FOUR)
    out, _ = _nas(capsys, "scale", "resnet20", "--budget", "400M-madds", "--data",
                  data["four"], "--json")  # from 162M at 64 px, CIFAR's 40.6M at 32
    scaled = json.loads(out)
    assert scaled["resolution"] > 64 and 0.85 <= scaled["ratio"] <= 1.0
    _nas(capsys, "export", tmp_path / "ck.pt", "--weights", tmp_path / "ck.pt",
         "-o", tmp_path / "m.py")
    exported = _module(tmp_path / "m.py")
    assert exported.CLASSES == FOUR and exported.RESOLUTION == 64
    _nas(capsys, "export", run, "-o", tmp_path / "again.py")  # the run's record, no data read
    assert _module(tmp_path / "again.py").MEAN == model.MEAN

    # moved to the 2 gray classes once, and kept in the run folder: not moved again
    _, err = _nas(capsys, "scale", run / "base.yaml", "--budget", "30M-madds", "--data",
                  data["two"], "-o", run / "base-two.yaml")
    assert "made for 4-class 64x64 images; transferred to the 2 classes" in err
    _, err = _nas(capsys, "train", run / "base-two.yaml", "--data", data["two"], "--epochs",
                  0.1)
    assert "transferred" not in err


def test_grayscale_archive_search_and_a_transfer(data, tmp_path, capsys, refused) -> None:
    run = tmp_path / "run"
    _nas(capsys, "search", "--budget", "20M-madds", "--data", data["two"], "--trials", 2,
         "--baselines", "", "--out", run)
    assert searchspace.Genotype.from_yaml(run / "best.yaml").num_classes == 2
    assert _module(run / "model.py").CLASSES == TWO

    cifar_net = tmp_path / "cifar-net.yaml"  # made for CIFAR-10's 10 classes
    searchspace.zoo.get("resnet20").replace(name="cifar-net").to_yaml(cifar_net)
    out, err = _nas(capsys, "train", cifar_net, "--data", data["two"], "-o",
                    tmp_path / "ck.pt", "--json")
    assert "built for 10 classes (32x32 images assumed); transferred to the 2 classes" in err
    assert json.loads(out)["transferred"]
    _, err = _nas(capsys, "scale", cifar_net, "--budget", "60M-madds", "--data", data["two"],
                  "-o", tmp_path / "scaled.yaml")
    assert searchspace.Genotype.from_yaml(tmp_path / "scaled.yaml").num_classes == 2
    _nas(capsys, "compare", cifar_net, "--data", data["two"], "--baselines", "resnet20",
         "-o", tmp_path / "cmp")
    head = (tmp_path / "cmp" / "report.md").read_text()
    assert "- transferred: cifar-net: built for 10 classes (32x32 images assumed)" in head
    assert "(2 classes, 32x32 pixels, 200 training and 50 test images)" in head

    line = refused("export", cifar_net, "--weights", tmp_path / "ck.pt", "-o", tmp_path / "x.py")
    assert "weights do not match" in line and "nas export" in line
    line = refused("search", "--resume", run, "--data", data["four"])
    assert "searched 2-class 32x32 images" in line and "4 classes, 64x64 pixels" in line


def test_a_network_for_other_classes_is_refused_by_the_python_api(data) -> None:
    ev = ProxyEvaluator(load_profile("proxy-cpu"), data=data["two"])
    with pytest.raises(DataError, match="resnet20 has 10 outputs but .* has 2 classes"):
        ev.evaluate(searchspace.zoo.get("resnet20"))


def test_images_of_several_sizes_are_one_line_or_resized(tmp_path, refused, capsys) -> None:
    root = tmp_path / "mixed"
    for part in ("train", "test"):
        for cls, size in (("a", (40, 40)), ("b", (48, 48)), ("c", (40, 30))):
            (root / part / cls).mkdir(parents=True)
            Image.new("RGB", size, (10, 200, 30)).save(root / part / cls / "x.png")
    line = refused("train", "resnet20", "--data", root)
    assert "48x48 pixels, but train/a/x.png is 40x40; pass --resize SIDE" in line
    info = data_info(with_resize(root, 36))
    assert info.side == 36 and info.classes == ("a", "b", "c")
    wide = tmp_path / "wide"
    for part in ("train", "test"):
        (wide / part / "a").mkdir(parents=True)
        Image.new("RGB", (40, 30)).save(wide / part / "a" / "x.png")
    assert "40x30 pixels, not square; pass --resize SIDE" in refused("train", "resnet20",
                                                                      "--data", wide)
    with pytest.raises(DataError, match="give a side from 1 to 4096"):
        with_resize(root, 0 - 5)


def test_the_screen_scores_networks_built_for_the_data(data, tmp_path) -> None:
    from nas.checks import check
    from nas.config import SearchConfig

    cfg = SearchConfig(budget="80M-madds", data=str(data["four"]), screen=4,
                       screen_by="grad_norm", out=str(tmp_path / "run"))
    found = check(cfg)
    assert found.shape == [4, 64] and found.space.num_classes == 4
    assert (found.screen.pick.space.num_classes, found.screen.pick.space.resolution) == (4, 64)


@pytest.mark.parametrize("spec,needle", [("?resize=0", "give a side from 1 to 4096"),
                                         ("?resize=99999", "give a side from 1 to 4096")])
def test_a_resize_out_of_range_is_one_line(spec, needle, data, refused) -> None:
    assert needle in refused("train", "resnet20", "--data", f"{data['four']}{spec}")
    assert needle in refused("train", "resnet20", "--data", data["four"], "--resize",
                             spec.split("=")[1])
