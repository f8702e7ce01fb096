"""The training loop and the proxy evaluator, on real CIFAR-10 images."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import searchspace
from evaluators import proxy as proxy_module
from evaluators.augment import random_crop_flip
from evaluators.proxy import ProxyEvaluator
from evaluators.recipe import RecipeError, load_profile, profile_names
from evaluators.train import WeightAverage
from searchspace import Limits, nb201

TINY = dict(epochs=1, train_subset=1024, batch_size=64, lr=0.1, time_limit=0, device="cpu")


def _tiny_net() -> searchspace.Genotype:
    return searchspace.scale(searchspace.zoo.get("resnet20"), width=0.5)


def test_augmentation_is_a_batched_translation_and_flip() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).view(2, 3, 8, 8)
    out = random_crop_flip(x, 0, True, gen)
    for a, b in zip(out, x):
        assert torch.equal(a, b) or torch.equal(a, b.flip(2))
    shifted = random_crop_flip(x, 2, False, gen)
    assert shifted.shape == x.shape and shifted.dtype == torch.uint8
    # every output row is a shifted window of the input padded with zeros
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        assert any(torch.equal(shifted[i], padded[i, :, dy:dy + 8, dx:dx + 8])
                   for dy in range(5) for dx in range(5))


def test_weight_average_matches_torchs_averaged_model() -> None:
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    torch.manual_seed(0)
    model = searchspace.build(_tiny_net())
    ours = WeightAverage(model, 0.9)
    theirs = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(4):
        loss = model(torch.randn(8, 3, 32, 32)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ours.update()
        theirs.update_parameters(model)
    a, b = ours.module.state_dict(), theirs.module.state_dict()
    assert a.keys() == b.keys()
    for k in a:  # weights and BN statistics (BN's integer batch counters are not averaged)
        if a[k].is_floating_point():
            assert torch.allclose(a[k], b[k], atol=1e-6), k
    # the average is not the model: it lags behind the last step
    k = next(k for k in a if k.endswith("weight"))
    assert not torch.allclose(a[k], model.state_dict()[k])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_steps_give_the_numbers_of_eager_steps() -> None:
    import numpy as np

    from evaluators.data import Split
    from evaluators.train import train

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (1024, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, 1024).astype(np.int64)
    split = Split(x, y, x[:256], y[:256], "val", "random")
    recipe = load_profile("proxy-gpu").replace(epochs=3, batch_size=128, ema=0.9)
    runs = []
    for graphs in (False, True):
        torch.manual_seed(0)
        runs.append(train(searchspace.build(_tiny_net()), split, recipe, 32,
                          torch.device("cuda"), graphs=graphs))
    eager, graphed = runs
    # the same kernels, replayed: equal up to cuDNN's choice of algorithm between runs
    assert [h.loss for h in graphed.history] == \
        pytest.approx([h.loss for h in eager.history], rel=1e-3)
    assert eager.accuracy == pytest.approx(graphed.accuracy, abs=1 / 256)


def test_profiles_load_and_unknown_ones_fail() -> None:
    assert set(profile_names()) >= {"proxy-cpu", "proxy-cpu-shallow", "proxy-gpu", "full",
                                    "final-cpu"}
    for name in profile_names():
        load_profile(name)
    with pytest.raises(RecipeError, match="unknown profile 'fast'"):
        load_profile("fast")


def test_proxy_trains_and_learns_on_real_images(cifar_jpeg) -> None:
    recipe = load_profile("proxy-cpu").replace(**{**TINY, "train_subset": 4096})
    ev = ProxyEvaluator(recipe, data=cifar_jpeg, limits=Limits(madds=600e6))
    result = ev.evaluate(_tiny_net())
    assert result.status == "ok", result.reason
    assert result.split == "val" and result.accuracy > 0.22  # chance is 0.10
    assert result.images_per_s > 0 and result.seconds > 0 and result.epochs == 1


def test_proxy_rejects_over_budget_without_building(cifar_jpeg, monkeypatch) -> None:
    def no_build(g):
        raise AssertionError("an over-budget candidate was built")
    monkeypatch.setattr(proxy_module.searchspace, "build", no_build)
    ev = ProxyEvaluator(load_profile("proxy-cpu"), data=cifar_jpeg, limits=Limits(madds=100e6))
    result = ev.evaluate(searchspace.zoo.get("resnet18"))
    assert result.status == "rejected" and "over the budget" in result.reason
    assert result.madds == searchspace.cost(searchspace.zoo.get("resnet18")).madds
    ev = ProxyEvaluator(load_profile("proxy-cpu"), data=cifar_jpeg, limits=Limits(params=1e6))
    assert ev.evaluate(searchspace.zoo.get("resnet18")).reason.startswith("params")


def test_a_diverging_candidate_fails_with_a_reason(cifar_jpeg) -> None:
    recipe = load_profile("proxy-cpu").replace(**{**TINY, "lr": 1e12, "train_subset": 256})
    result = ProxyEvaluator(recipe, data=cifar_jpeg).evaluate(_tiny_net())
    assert result.status == "failed" and "diverged" in result.reason


def test_a_score_depends_only_on_network_seed_recipe_and_data(cifar_jpeg) -> None:
    recipe = load_profile("proxy-cpu").replace(**{**TINY, "train_subset": 512})
    ev = ProxyEvaluator(recipe, data=cifar_jpeg)
    g = _tiny_net()
    first = ev.evaluate(g, seed=3).accuracy
    torch.manual_seed(12345)  # whatever ran before (another trial) must not matter
    assert ProxyEvaluator(recipe, data=cifar_jpeg).evaluate(g, seed=3).accuracy == first
    assert ev.train(g, seed=3).accuracy == first  # `nas train G --seed 3` reproduces it
    assert ev.evaluate(g, seed=4).accuracy != first
    # one training subset for every candidate and seed, not a draw per trial
    assert len(ev.split.train_y) == 512
    again = ProxyEvaluator(recipe.replace(epochs=0.5), data=cifar_jpeg).split
    assert (again.train_x == ev.split.train_x).all()


def test_a_too_slow_candidate_fails_early_with_its_throughput(cifar_jpeg) -> None:
    recipe = load_profile("proxy-cpu").replace(**{**TINY, "train_subset": 4096,
                                                  "time_limit": 0.2})
    ev = ProxyEvaluator(recipe, data=cifar_jpeg)
    result = ev.evaluate(_tiny_net())
    assert result.status == "failed" and result.reason.startswith("too slow:"), result.reason
    assert "over the time limit of 0.2 s" in result.reason
    assert result.images_per_s > 0 and result.seconds < 5
    # a network a user asks for trains to the end: no guard outside a search
    assert ev.train(_tiny_net(), recipe=recipe.replace(train_subset=256)).epochs == 1


def test_reduced_depth_width_and_resolution(cifar_jpeg) -> None:
    recipe = load_profile("proxy-cpu").replace(**{**TINY, "width_mult": 0.5, "resolution": 24,
                                                  "depth_mult": 0.5, "train_subset": 256})
    ev = ProxyEvaluator(recipe, data=cifar_jpeg)
    g = searchspace.zoo.get("resnet20")
    trained = ev.trained_genotype(g)
    assert trained.resolution == 24 and trained.stages[2].width == 32
    assert [s.depth for s in g.stages] == [3] * 3
    assert [s.depth for s in trained.stages] == [2] * 3  # ceil(1.5)
    result = ev.evaluate(g)  # trains the reduced copy, reports the genotype's own cost
    assert result.status == "ok" and result.madds == searchspace.cost(g).madds
    # NAS-Bench-201's five cells a stage become one in proxy-cpu-shallow
    shallow = ProxyEvaluator(load_profile("proxy-cpu-shallow"))
    cell = shallow.trained_genotype(nb201.genotype(dict.fromkeys(nb201.DECISIONS, "nor_conv_3x3")))
    assert [s.depth for s in cell.stages] == [1, 2, 2] and cell.resolution == 16
    assert shallow.recipe.reduction() == "cells per stage x0.2, 16x16 input"
    assert recipe.reduction() == "cells per stage x0.5, channels x0.5, 24x24 input"
    assert load_profile("proxy-cpu").reduction() == ""


def test_nas_train_json_and_checkpoint(cifar_jpeg, tmp_path) -> None:
    profile = tmp_path / "tiny.yaml"
    profile.write_text("split: search\nepochs: 1\ntrain_subset: 512\nbatch_size: 64\n"
                       "lr: 0.1\ndevice: cpu\n")
    ckpt = tmp_path / "net.ckpt"
    r = subprocess.run([sys.executable, "-m", "nas.cli", "train", "resnet20", "--profile",
                        str(profile), "--data", str(cifar_jpeg), "-o", str(ckpt), "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(out) >= {"val_accuracy", "madds", "params", "seconds", "epochs", "device"}
    assert out["params"] == 269_722 and "epoch 1/1" in r.stderr
    saved = torch.load(ckpt, weights_only=True)
    g = searchspace.Genotype.from_yaml(saved["genotype"])
    model = searchspace.build(g)
    model.load_state_dict(saved["state_dict"])


@pytest.mark.parametrize("args,needle", [
    (["--profile", "nope"], "unknown profile 'nope'"),
    (["--data", "/no/such/place"], "no such file or folder"),
    (["--epochs", "0"], "--epochs must be positive"),
])
def test_nas_train_bad_input(args, needle) -> None:
    r = subprocess.run([sys.executable, "-m", "nas.cli", "train", "resnet20", *args],
                       capture_output=True, text=True)
    assert r.returncode == 2 and needle in r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("nas: error") == 1


def test_the_layout_changes_how_the_loop_runs_not_what_it_computes(cifar_jpeg) -> None:
    """channels_last: false (NCHW) trains the same network to the same numbers, up to the
    rounding of other convolution kernels: a setting gpu_probe.py may pick for speed."""
    runs = []
    for channels_last in (True, False):
        ev = ProxyEvaluator(load_profile("proxy-cpu").replace(**{**TINY, "epochs": 0.5},
                                                              channels_last=channels_last),
                            data=cifar_jpeg)
        runs.append(ev.train(_tiny_net(), seed=3))
    nhwc, nchw = runs
    assert nchw.history[-1].loss == pytest.approx(nhwc.history[-1].loss, rel=1e-3)
    assert nchw.accuracy == pytest.approx(nhwc.accuracy, abs=0.01)
    weights = [p for p in nchw.model.parameters() if p.ndim == 4]
    assert all(w.is_contiguous() for w in weights)  # NCHW indeed
    assert not all(w.is_contiguous() for w in nhwc.model.parameters() if w.ndim == 4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_compiled_model_trains_to_the_numbers_of_an_eager_one(cifar_jpeg) -> None:
    runs = []
    for compile_ in (False, True):
        recipe = load_profile("proxy-gpu").replace(epochs=2, train_subset=4096, compile=compile_)
        runs.append(ProxyEvaluator(recipe, data=cifar_jpeg).train(_tiny_net(), seed=0))
    eager, compiled = runs
    assert compiled.history[-1].loss == pytest.approx(eager.history[-1].loss, rel=2e-2)
    assert compiled.accuracy == pytest.approx(eager.accuracy, abs=0.03)
