"""Every user-caused error is one line on stderr and exit code 2: never a traceback, a hang, or
bad input silently taken. Each reproducer a probe found runs through ``nas.cli.main`` in
process (under a deadline, so a hang fails instead of stalling CI); property tests feed the
loaders damaged genotypes, spaces, profiles and flags."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import errno
import functools
import io
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import yaml
from bad_input_strategies import (
    GENOTYPE_BASES,
    PROFILE_BASES,
    SPACE_BASES,
    VALUES,
    check_genotype_input,
    damaged,
    dump,
    genotype_inputs,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import searchspace
from evaluators.recipe import Recipe, RecipeError, apply_sets, load_profile
from nas import flags
from nas.budget import parse_budget
from nas.cli import _parser, main
from nas.errors import UserError
from searchspace import Genotype, GenotypeError, Limits, SpaceError
from searchspace.limits import MAX_FILE_BYTES, MAX_MADDS, MAX_PARAMS

ROOT = Path(__file__).resolve().parents[1]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
FAST = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


class _Hang(BaseException):
    """Raised by the deadline: no ``except Exception`` in the code under test swallows it."""


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    def alarm(signum, frame):
        raise _Hang(f"no answer in {seconds} s")

    before = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)


def _refused(capsys, argv: list[str], needle: str = "", seconds: float = 10) -> str:
    """Run ``nas argv``; assert exit 2 and exactly one stderr line ``nas: error: ...`` holding
    ``needle``; returns that line."""
    capsys.readouterr()
    with _deadline(seconds):
        code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("nas: error: "), err
    assert "Traceback" not in err and needle in lines[0], lines[0]
    return lines[0]


# --- fixtures: a resnet20 with one edit, a tiny image-folder dataset, a tiny profile -------


def _resnet20(edit: Callable[[dict], object]) -> str:
    data = searchspace.zoo.get("resnet20").to_dict()
    edit(data)
    return yaml.safe_dump(data)


def _node(d: dict) -> dict:
    return d["stages"][0]["cell"]["nodes"][0]


def _big_net(d: dict) -> None:
    """resnet20 at 4096 px and 65,536 channels: within every other limit, 5e18 multiply-adds."""
    d.update(resolution=4096)
    d["stem"]["width"] = 1 << 16
    for s in d["stages"]:
        s["width"] = 1 << 16


GENOTYPES = [  # (id, YAML text or an edit of resnet20, what the error line holds)
    ("stem-null", lambda d: d.update(stem=None), "stem: expected a mapping, got null"),
    ("head-null", lambda d: d.update(head=None), "head: expected a mapping, got null"),
    ("cell-null", lambda d: d["stages"][0].update(cell=None), "stages[0].cell: expected a"),
    ("depth-float", lambda d: d["stages"][0].update(depth=3.0), "stages[0].depth: expected an"),
    ("depth-str", lambda d: d["stages"][0].update(depth="3"), "stages[0].depth: expected an"),
    ("width-bool", lambda d: d["stem"].update(width=True), "stem.width: expected an integer"),
    ("width-inf", lambda d: _node(d).update(width=math.inf), "nodes[0].width: must be a finite"),
    ("width-nan", lambda d: _node(d).update(width=math.nan), "nodes[0].width: must be a finite"),
    ("width-1e308", lambda d: _node(d).update(width=1e308), "nodes[0].width: 1e+308 is over"),
    ("width-negative", lambda d: _node(d).update(width=-1.0), "nodes[0].width: must be positive"),
    ("width-zero", lambda d: _node(d).update(width=0.0), "nodes[0].width: must be positive"),
    ("resolution-zero", lambda d: d.update(resolution=0), "resolution: must be a positive"),
    ("resolution-huge", lambda d: d.update(resolution=10**6), "resolution: 1,000,000 is over"),
    ("resolution-10^400", lambda d: d.update(resolution=10**400), "does not fit in 64 bits"),
    ("stem-negative", lambda d: d["stem"].update(width=-16), "stem.width: must be a positive"),
    ("kernel-huge", lambda d: _node(d).update(kernel=10**6 + 1), "nodes[0].kernel: must be an"),
    ("depth-10^6", lambda d: d["stages"][0].update(depth=10**6), "stages[0].depth: 1,000,000"),
    ("cells-in-all", lambda d: [s.update(depth=1001) for s in d["stages"][:2]],
     "stages: 2,005 cells in all"),
    ("classes-huge", lambda d: d.update(num_classes=10**12), "num_classes: 1,000,000,000,000"),
    ("cost-ceiling", _big_net, f"multiply-adds: 5.11e+18, over the limit of {MAX_MADDS:.0e}"),
    # 100,000 levels: libyaml itself refuses past 1,000 (PyYAML 6.0.4 words it "exceeded maximum
    # nesting depth"), ours past 32; either way one line that names the nesting.
    ("deep", "stem: " + "[" * 100_000 + "]" * 100_000, "nest"),
    ("deep-40", "stem: " + "[" * 40 + "]" * 40, "nested deeper than 32 levels"),
    ("aliases", "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a]\n",
     "aliases (*name) are not allowed"),
    ("hex-int", "resolution: 0x" + "f" * 20_000, "does not fit in 64 bits"),
    ("long-int", "resolution: " + "9" * 5000, "does not fit in 64 bits"),
    ("bad-date", "name: 2001-13-45", "not valid YAML: month must be in 1..12"),
]


@pytest.mark.parametrize("content,needle", [g[1:] for g in GENOTYPES],
                         ids=[g[0] for g in GENOTYPES])
def test_bad_genotype_file_is_one_line(content, needle, tmp_path, capsys) -> None:
    path = tmp_path / "net.yaml"
    path.write_text(content if isinstance(content, str) else _resnet20(content))
    line = _refused(capsys, ["info", path], needle)
    assert line.startswith(f"nas: error: {path}: ") and line.count(str(path)) == 1


def test_the_cost_ceiling_also_stops_train_before_anything(tmp_path, capsys) -> None:
    path = tmp_path / "net.yaml"
    path.write_text(_resnet20(_big_net))
    _refused(capsys, ["train", path, "--profile", "proxy-cpu", "--data", tmp_path / "none"],
             f"over the limit of {MAX_MADDS:.0e}")


@pytest.mark.parametrize("blob,needle", [
    (b"name: r\xe9snet\n", "not UTF-8 text (byte 7: 0xe9)"),
    (b"\x00\x01\x02", "unacceptable character"),
    (b"stem: {width: 16}\n" + b"#" * MAX_FILE_BYTES, "over the limit of 1,048,576"),
], ids=["latin-1", "binary", "over-1MB"])
def test_unreadable_genotype_bytes(blob, needle, tmp_path, capsys) -> None:
    path = tmp_path / "net.yaml"
    path.write_bytes(blob)
    _refused(capsys, ["info", path], needle)


def test_a_14MB_genotype_is_refused_before_parsing(tmp_path, capsys) -> None:
    stage = yaml.safe_dump([searchspace.zoo.get("resnet20").to_dict()["stages"][0]])
    path = tmp_path / "big.yaml"
    path.write_text("stem: {width: 16}\nstages:\n" + stage * (14_000_000 // len(stage)))
    _refused(capsys, ["info", path], "over the limit of 1,048,576 for a YAML file", seconds=2)


def test_a_file_that_cannot_be_read(tmp_path, capsys) -> None:
    with pytest.raises(GenotypeError, match="cannot read it"):
        Genotype.from_yaml(tmp_path)  # a folder
    mem = tmp_path / "mem.yaml"  # a regular file whose read fails, even for root
    mem.symlink_to("/proc/self/mem")
    if not mem.is_file():  # not Linux
        pytest.skip("no /proc/self/mem here")
    _refused(capsys, ["info", mem], "cannot read it (Input/output error)")


@pytest.mark.skipif(IS_ROOT, reason="root reads files without permission")
def test_a_file_without_permission(tmp_path, capsys) -> None:
    path = tmp_path / "net.yaml"
    path.write_text(searchspace.zoo.get("resnet20").to_yaml())
    path.chmod(0)
    _refused(capsys, ["info", path], "cannot read it (Permission denied)")


def test_ops_channels_and_layout_never_see_unbounded_values() -> None:
    """The roots of the OverflowError in ops.channels and of the layout hang."""
    for edit in (lambda d: _node(d).update(width=1e308),
                 lambda d: d["stages"][0].update(depth=10**6)):
        with _deadline(2), pytest.raises(GenotypeError):
            Genotype.from_yaml(_resnet20(edit))


# --- spaces and profiles --------------------------------------------------------------------


def _space(edit: Callable[[dict], object]) -> str:
    data = yaml.safe_load((ROOT / "searchspace/spaces/cells.yaml").read_text())
    edit(data)
    return yaml.safe_dump(data)


def _decisions(**changes) -> Callable[[dict], None]:
    return lambda d: d["decisions"].update(changes)


SPACES = [
    ("resolution-str", lambda d: d.update(resolution="big"), "resolution: must be an integer"),
    ("classes-negative", lambda d: d.update(num_classes=-3), "num_classes: must be an integer"),
    ("width-inf", _decisions(stage1_width=[math.inf]), "decisions.stage1_width: choices are"),
    ("mult-nan", _decisions(stage2_mult=[math.nan]), "decisions.stage2_mult: choices are"),
    ("repeat-10^9", _decisions(repeat=[10**9]), "repeat: must be from 1 to 64"),
    ("depth-10^6", _decisions(stage1_depth=[10**6]), "stages[0].depth: 1,000,000 is over"),
    ("width-str", _decisions(stage1_width=["wide"]), "invalid literal for int()"),
    ("too-many-choices", _decisions(kernel=list(range(1, 2000, 2))), "over the limit of 1,000"),
    ("unknown-field", lambda d: d.update(decision={}), "decision: unknown field"),
    ("name-list", lambda d: d.update(name=[1]), "name: expected a string"),
    ("deep", lambda d: d.update(decisions=_nested(100)), "nested deeper than 32 levels"),
]


def _nested(n: int) -> list:
    out: list = [1]
    for _ in range(n):
        out = [out]
    return out


@pytest.mark.parametrize("edit,needle", [s[1:] for s in SPACES], ids=[s[0] for s in SPACES])
def test_bad_space_file_is_one_line(edit, needle, tmp_path, capsys) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(_space(edit))
    _refused(capsys, ["search", "--budget", "600M", "--space", path, "--out", tmp_path / "run"],
             needle, seconds=20)


PROFILES = [
    ("batch-float", {"batch_size": 64.5}, "batch_size: expected an integer, got 64.5"),
    ("time-str", {"time_limit": "120"}, "time_limit: expected a number, got '120'"),
    ("eval-batch-zero", {"eval_batch_size": 0}, "eval_batch_size: must be at least 1"),
    ("epochs-inf", {"epochs": math.inf}, "epochs: must be a finite number, got inf"),
    ("lr-nan", {"lr": math.nan}, "lr: must be a finite number, got nan"),
    ("decay-negative", {"weight_decay": -1.0}, "weight_decay: must be at least 0"),
    ("device-tpu", {"device": "tpu"}, "device: 'tpu' is not one of cpu, cuda"),
    ("crop-negative", {"crop_pad": -4}, "crop_pad: must be at least 0"),
    ("flip-str", {"flip": "yes"}, "flip: expected true or false, got 'yes'"),
    ("epochs-zero", {"epochs": 0}, "epochs: must be more than 0"),
    ("holdout-one", {"holdout": 1.0}, "holdout: must be at least 0 and under 1"),
    ("unknown", {"epoch": 1}, "unknown field 'epoch'"),
]


@pytest.mark.parametrize("changes,needle", [p[1:] for p in PROFILES],
                         ids=[p[0] for p in PROFILES])
def test_bad_profile_is_one_line(changes, needle, tmp_path, capsys) -> None:
    path = tmp_path / "prof.yaml"
    base = yaml.safe_load((ROOT / "evaluators/profiles/proxy-cpu.yaml").read_text())
    path.write_text(yaml.safe_dump({**base, **changes}))
    line = _refused(capsys, ["train", "resnet20", "--profile", path, "--data",
                             tmp_path / "none"], needle)
    assert line.startswith(f"nas: error: {path}: ")


@pytest.mark.parametrize("item,needle", [
    ("epochs=.inf", "epochs: must be a finite number"),
    ("epochs=inf", "epochs: expected a number, got 'inf'"),
    ("batch_size=1.5", "batch_size: expected an integer"),
    ("device=tpu", "device: 'tpu' is not one of"),
    ("epoch=1", "expected KEY=VALUE with KEY one of"),
    ("lr", "expected KEY=VALUE"),
    ("lr=[1", "--set lr: not valid YAML"),
])
def test_set_overrides_are_checked(item, needle) -> None:
    with pytest.raises(RecipeError) as info:
        apply_sets(load_profile("proxy-cpu"), [item])
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_set_overrides_are_typed() -> None:
    r = apply_sets(load_profile("proxy-cpu"), ["epochs=0.5", "flip=false", "device=cpu"])
    assert (r.epochs, r.flip, r.device) == (0.5, False, "cpu")


# --- flags ----------------------------------------------------------------------------------

TINY = ["--profile", "proxy-cpu", "--data", "/nonexistent/data"]
FLAGS = [
    (["train", "resnet20", *TINY, "--device", "tpu"], "argument --device: 'tpu' is not one of"),
    (["train", "resnet20", *TINY, "--epochs", "nan"], "argument --epochs: must be a finite"),
    (["train", "resnet20", *TINY, "--epochs", "inf"], "argument --epochs: must be a finite"),
    (["train", "resnet20", *TINY, "--seed", "-1"], "argument --seed: must be from 0 to"),
    (["train", "resnet20", *TINY, "--seed", str(2**70)], "argument --seed: must be from 0"),
    (["train", "resnet20", *TINY, "--seed", "9" * 5000], "argument --seed: expected an int"),
    *[(["scale", "resnet20", "--budget", "100M", flag, value], f"argument {flag}: must be")
      for flag in ("--alpha", "--beta", "--gamma") for value in ("nan", "inf", "0.5", "1e300")],
    (["scale", "resnet20", "--budget", "100M", "--grid", "--grid-step", "0", *TINY],
     "argument --grid-step: must be from 0.01 to 1.0"),
    (["scale", "resnet20", "--budget", "100M", "--grid", "--profile", "proxy-cpu-shallow",
      "--data", "/nonexistent/data"], "the grid could not tell depth or resolution apart"),
    (["scale", "resnet20", "--budget", "9" * 400 + "T"], f"over the limit of {MAX_MADDS:.0e}"),
    (["scale", "resnet20", "--budget", f"{2 * MAX_PARAMS // 10**12}T-params"],
     f"over the limit of {MAX_PARAMS:.0e} params"),
    (["search", "--budget", "600M", "--seed", "-1"], "argument --seed: must be from 0 to"),
    (["search", "--budget", "600M", "--seed", str(2**70)], "argument --seed: must be from 0"),
    (["search", "--budget", "600M", "--time", "0"], "must be more than 0 seconds"),
    (["search", "--budget", "9" * 400 + "T"], f"over the limit of {MAX_MADDS:.0e} madds"),
]


@pytest.mark.parametrize("argv,needle", FLAGS, ids=[" ".join(a)[:60] for a, _ in FLAGS])
def test_bad_flag_is_one_line(argv, needle, tmp_path, capsys) -> None:
    extra = ["--out", tmp_path / "run"] if argv[0] == "search" else []
    _refused(capsys, [*argv, *extra], needle)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_device_this_machine_lacks(tmp_path, capsys) -> None:
    _refused(capsys, ["train", "resnet20", *TINY, "--device", "cuda"], "has no CUDA device")
    path = tmp_path / "gpu.yaml"
    path.write_text("split: search\nepochs: 1\nbatch_size: 8\nlr: 0.1\ndevice: cuda\n")
    _refused(capsys, ["train", "resnet20", "--profile", path, "--data", tmp_path],
             "gpu: device: 'cuda', but this machine has no CUDA device")


def test_scaling_to_a_large_budget_still_works() -> None:
    from nas.scaling import scale_to_budget

    with _deadline(60):
        r = scale_to_budget(searchspace.zoo.get("resnet20"), Limits(madds=9e11))
    assert 0.9 <= r.ratio <= 1.0


# --- output paths ---------------------------------------------------------------------------


def _outputs(tmp_path: Path) -> list[tuple[str, Path, str]]:
    afile = tmp_path / "file"
    afile.write_text("x")
    return [("/proc", Path("/proc/x"), "cannot write in /proc"),
            ("under-a-file", afile / "out.pt", "file is a file, not a folder"),
            ("a-folder", tmp_path, "is a folder, not a file")]


COMMANDS = {
    "train": lambda out: ["train", "resnet20", *TINY, "-o", out],
    "scale": lambda out: ["scale", "resnet20", "--budget", "100M", "-o", out],
    "export": lambda out: ["export", "resnet20", "-o", out],
    "compare": lambda out: ["compare", "--baselines", "resnet20", *TINY, "-o", out],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_unwritable_output_fails_before_any_work(command, tmp_path, capsys) -> None:
    for label, out, needle in _outputs(tmp_path):
        if command == "compare" and label == "a-folder":  # compare writes a folder
            out, needle = tmp_path / "file", "is a file, not a folder"
        _refused(capsys, COMMANDS[command](out), needle)


@pytest.mark.skipif(IS_ROOT, reason="root writes in read-only folders")
def test_read_only_output_folder(tmp_path, capsys) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    for command in COMMANDS:
        _refused(capsys, COMMANDS[command](folder / "out"), "Permission denied")


def test_check_writable_accepts_new_paths(tmp_path) -> None:
    from nas.paths import check_writable

    check_writable(tmp_path / "a" / "b" / "model.py")
    check_writable(tmp_path / "run", folder=True)
    check_writable(tmp_path, folder=True)
    with pytest.raises(UserError, match="is a folder, not a file"):
        check_writable(tmp_path)


# --- stdout on a full disk ------------------------------------------------------------------


class _FullStdout(io.StringIO):
    def flush(self) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_stdout_is_one_line(capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdout", _FullStdout())
    with _deadline(10):
        code = main(["zoo"])
    err = capsys.readouterr().err
    assert code == 2 and err == "nas: error: cannot write the output: No space left on device\n"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_stdout_to_dev_full_in_a_real_process() -> None:
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "nas.cli", "zoo"], stdout=full,
                           stderr=subprocess.PIPE, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2, r.stderr
    assert r.stderr == "nas: error: cannot write the output: No space left on device\n"


# --- images ---------------------------------------------------------------------------------


def _png_header(w: int, h: int) -> bytes:
    """A PNG that claims w x h pixels (8-bit grey) with almost no data: a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))


def _jpeg() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, "JPEG")
    return buf.getvalue()


IMAGES = [
    ("bomb", lambda: _png_header(100_000, 100_000), "bad.png", "possible decompression bomb"),
    ("bomb-warning", lambda: _png_header(10_000, 10_000), "bad.png", "decompression bomb"),
    ("corrupt-jpeg", lambda: _jpeg()[:20] + b"\x00" * 30 + _jpeg()[50:], "bad.jpg",
     "not a readable image"),
    ("truncated-jpeg", lambda: _jpeg()[:200], "bad.jpg", "not a readable image"),
    ("not-an-image", lambda: b"hello", "bad.png", "not a readable image"),
    ("other-size", lambda: _png_header(9, 9), "bad.png",
     "9x9 pixels, but train/a/0.png is 8x8; pass --resize SIDE"),
]


@pytest.mark.parametrize("make,name,needle", [i[1:] for i in IMAGES], ids=[i[0] for i in IMAGES])
def test_bad_image_in_a_dataset(make, name, needle, tmp_path, capsys, monkeypatch) -> None:
    from PIL import Image

    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "data"
    for part in ("train", "test"):
        for c in ("a", "b"):
            (root / part / c).mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (8, 8), (i, 0, 0)).save(root / part / c / f"{i}.png")
    (root / "train" / "b" / name).write_bytes(make())
    profile = tmp_path / "tiny.yaml"
    profile.write_text("split: search\nepochs: 1\nbatch_size: 4\nlr: 0.1\nval_size: 2\n"
                       "device: cpu\n")
    line = _refused(capsys, ["train", "resnet20", "--profile", profile, "--data", root], needle)
    assert f"train/b/{name}" in line


# --- properties -----------------------------------------------------------------------------


@FAST
@given(genotype_inputs)
def test_damaged_genotypes_are_valid_or_refused(case) -> None:
    """from_yaml / from_dict: a valid genotype under the ceiling, or GenotypeError; never any
    other exception."""
    check_genotype_input(*case)


_TMP = Path(tempfile.mkdtemp(prefix="nas-bad-input-"))  # one file rewritten per example
atexit.register(shutil.rmtree, _TMP, True)


@settings(FAST, max_examples=100)
@given(damaged(SPACE_BASES))
def test_damaged_spaces_are_valid_or_refused(data) -> None:
    path = _TMP / "space.yaml"
    path.write_text(dump(data))
    try:
        space = searchspace.load_space(path)
    except SpaceError:
        return
    assert space.size >= 1
    try:  # each choice and the largest ones together decode; a rarer mix may pass the limits
        g = space.sample(seed=1)
    except GenotypeError:
        return
    assert 0 < searchspace.cost(g).madds <= MAX_MADDS


@FAST
@given(damaged(PROFILE_BASES))
def test_damaged_profiles_are_valid_or_refused(data) -> None:
    path = _TMP / "profile.yaml"
    path.write_text(dump(data))
    try:
        recipe = load_profile(path)
    except RecipeError:
        return
    assert isinstance(recipe, Recipe)
    for value in (recipe.epochs, recipe.lr, recipe.time_limit, recipe.width_mult,
                  recipe.depth_mult):
        assert math.isfinite(value)
    assert recipe.batch_size >= 1 and recipe.eval_batch_size >= 1


@FAST
@given(st.lists(st.tuples(st.sampled_from(["epochs", "lr", "batch_size", "flip", "device",
                                           "holdout", "nope", ""]),
                          VALUES.map(lambda v: dump(v).strip().removesuffix("...").strip())),
                max_size=3))
def test_set_overrides_are_valid_or_refused(items) -> None:
    try:
        recipe = apply_sets(load_profile("proxy-cpu"), [f"{k}={v}" for k, v in items])
    except RecipeError:
        return
    assert math.isfinite(recipe.epochs) and recipe.batch_size >= 1


BUDGET_TEXT = st.text(alphabet="0123456789.kKmMgGtT-, madsflopcr", max_size=16)


@FAST
@given(BUDGET_TEXT)
def test_budgets_are_valid_or_refused(text) -> None:
    try:
        budget = parse_budget(text)
    except UserError:
        return
    ceiling = {"madds": MAX_MADDS, "params": MAX_PARAMS}
    assert all(0 < v <= ceiling[k] for k, v in budget.limits.items())


TOKENS = st.sampled_from(["--budget", "--seed", "--time", "--trials", "--workers", "--screen",
                          "--strategy", "--space", "--no-scale", "--json", "600M", "-1", "0",
                          "nan", "inf", "1e400", str(2**70), "45m", "1h30m", "evolution", "x"])


@functools.cache
def _search_parser() -> argparse.ArgumentParser:
    return _parser()


@FAST
@given(st.lists(st.one_of(TOKENS, BUDGET_TEXT), max_size=6))
def test_search_flags_parse_or_are_refused(tokens) -> None:
    """`nas search` parsing (no search runs): a namespace whose budget, time and seed read,
    or UserError."""
    from nas.config import parse_duration

    try:
        args = _search_parser().parse_args(["search", *tokens])
        if args.budget:
            parse_budget(args.budget)
        if args.time:
            parse_duration(args.time)
    except UserError:
        return
    assert 0 <= args.seed <= flags.MAX_SEED


INFO_ARGS = st.one_of(
    st.sampled_from([*searchspace.zoo.names(), "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|"
                     "avg_pool_3x3~0|nor_conv_1x1~1|none~2|", "|x~0|", "+|", "a.yaml"]),
    st.text(alphabet="|~+0123abc_.yml/-", max_size=24),
)


@FAST
@given(INFO_ARGS)
def test_nas_info_of_any_argument(capsys, arg) -> None:
    capsys.readouterr()
    with _deadline(10):
        code = main(["info", arg])
    err = capsys.readouterr().err
    assert code in (0, 2) and "Traceback" not in err
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("nas: error: ")


def test_genotype_bases_are_valid() -> None:
    """The strategies start from valid genotypes (so damage, not the base, is refused)."""
    for data in GENOTYPE_BASES:
        assert check_genotype_input(data, False) == "valid"
