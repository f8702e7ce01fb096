"""Training that resumes: stopped by a signal at a random step and run again, it ends with the
very weights of a run never stopped; a state from another training is refused in one line."""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import threading
import time

import pytest
import torch

import searchspace
from evaluators.checkpoint import CheckpointError, Paused, identity, load_state
from evaluators.data import load_search
from evaluators.proxy import subset
from evaluators.recipe import load_profile
from evaluators.train import train

CPU = torch.device("cpu")


def _net(width: float = 0.25) -> searchspace.Genotype:
    """EfficientNet-B0, thinned: depthwise convolutions, squeeze-excitation, dropout."""
    return searchspace.scale(searchspace.zoo.get("efficientnet_b0"), depth=0.34, width=width,
                             resolution=16)


@pytest.fixture(scope="module")
def split(cifar_jpeg):
    """1,536 real training images and 500 validation images."""
    return _small(load_search(cifar_jpeg, 5000))


def _small(s):
    s = subset(s, 1536)
    return dataclasses.replace(s, eval_x=s.eval_x[:500], eval_y=s.eval_y[:500])


RECIPE = load_profile("full").replace(epochs=3, batch_size=64, ema=0.9, device="cpu")


def _run(split, state=None, g=None, recipe=RECIPE, seed=1):
    g = g or _net()
    torch.manual_seed(seed)
    return train(searchspace.build(g), split, recipe, g.resolution, CPU, seed, state=state)


def _stop_after(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    return timer


def test_a_run_stopped_at_a_random_step_resumes_to_the_same_weights(split, tmp_path) -> None:
    start = time.perf_counter()
    whole = _run(split)
    took = time.perf_counter() - start
    state = tmp_path / "run.state"
    pauses = []
    for _ in range(2):  # stopped twice, the second time after a resume
        timer = _stop_after(random.uniform(0.15, 0.4) * took)
        try:
            with pytest.raises(Paused) as stop:
                _run(split, state)
        finally:
            timer.cancel()
        pauses.append(stop.value.step)
        assert stop.value.signum == signal.SIGTERM and state.is_file()
        assert "the same command resumes it" in str(stop.value)
    assert 0 < pauses[0] < pauses[1] < stop.value.total
    resumed = _run(split, state)
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:  # bit for bit: weights, BN statistics, the average
        assert torch.equal(a[k], b[k]), k
    assert resumed.accuracy == whole.accuracy
    assert [h.loss for h in resumed.history] == [h.loss for h in whole.history]
    assert resumed.seconds > 0 and resumed.epochs == whole.epochs
    # the finished state resumes to the end at once: the same score, no training
    again = _run(split, state)
    assert again.accuracy == whole.accuracy


def test_a_state_from_another_training_is_refused_in_one_line(split, tmp_path) -> None:
    state = tmp_path / "run.state"
    _run(split, state, recipe=RECIPE.replace(epochs=0.1))  # a finished run leaves its state
    assert state.is_file()
    others = {"recipe": dict(recipe=RECIPE.replace(epochs=0.2)), "seed": dict(seed=2),
              "network": dict(g=_net(width=0.5))}
    for part, change in others.items():
        kwargs = {"recipe": RECIPE.replace(epochs=0.1), **change}
        with pytest.raises(CheckpointError, match=f"another training .its {part} differs") \
                as exc:
            _run(split, state, **kwargs)
        assert len(str(exc.value).splitlines()) == 1
    with pytest.raises(CheckpointError, match="data differs"):
        _run(_small(dataclasses.replace(split, train_y=split.train_y[::-1].copy())), state,
             recipe=RECIPE.replace(epochs=0.1))
    # a generator's state does not cross devices: a CPU state on CUDA is refused, not a crash
    ident = identity(searchspace.build(_net()), RECIPE.replace(epochs=0.1),
                     (split.train_x, split.train_y, split.eval_x, split.eval_y), 16, 1,
                     torch.device("cuda"))
    with pytest.raises(CheckpointError, match="its device differs"):
        load_state(state, ident)
    state.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a training state"):
        _run(split, state, recipe=RECIPE.replace(epochs=0.1))


def test_nas_train_stopped_by_sigterm_resumes_with_the_same_command(cifar_jpeg, tmp_path) -> None:
    """As a user meets it: SIGTERM after the first epoch, one line that says how to go on,
    the same command again, and the result of a training never stopped."""
    import json
    import subprocess
    import sys

    profile = tmp_path / "tiny.yaml"
    profile.write_text("split: search\nepochs: 3\ntrain_subset: 768\nbatch_size: 64\n"
                       "lr: 0.1\nema: 0.9\ndevice: cpu\n")
    net = tmp_path / "net.yaml"
    _net().to_yaml(net)

    def command(out: str) -> list[str]:
        return [sys.executable, "-m", "nas.cli", "train", str(net), "--profile", str(profile),
                "--data", str(cifar_jpeg), "--seed", "4", "-o", str(tmp_path / out), "--json"]

    p = subprocess.Popen(command("a.pt"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    for line in p.stderr:
        if line.startswith("epoch 1/3"):
            p.send_signal(signal.SIGTERM)
            break
    _, rest = p.communicate(timeout=300)
    assert p.returncode == 128 + signal.SIGTERM, rest
    last = rest.strip().splitlines()[-1]
    assert "the same command resumes it" in last and "a.pt.state" in last, rest
    assert (tmp_path / "a.pt.state").is_file() and not (tmp_path / "a.pt").exists()

    resumed = subprocess.run(command("a.pt"), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming the training saved in" in resumed.stderr
    assert not (tmp_path / "a.pt.state").exists()  # the result is kept: the state goes
    whole = subprocess.run(command("b.pt"), capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr
    score = [json.loads(r.stdout.splitlines()[-1])["val_accuracy"] for r in (resumed, whole)]
    assert score[0] == score[1]
    a, b = (torch.load(tmp_path / f, weights_only=True)["state_dict"] for f in ("a.pt", "b.pt"))
    assert all(torch.equal(a[k], b[k]) for k in a)
