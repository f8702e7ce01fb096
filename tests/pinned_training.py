"""Train resnet20 briefly by a tiny search recipe and print what it scored (run by
test_pinned_scores.py in a process whose CPU kernels are pinned to AVX2)."""

import json
import sys

import torch

import searchspace
from evaluators.proxy import ProxyEvaluator
from evaluators.recipe import Recipe

recipe = Recipe(name="pin", split="search", epochs=1, train_subset=512, batch_size=64, lr=0.1,
                val_size=1000, device="cpu")
ev = ProxyEvaluator(recipe, data=sys.argv[1])
r = ev.train(searchspace.zoo.get("resnet20"), seed=3)
weights = sum(p.double().abs().sum().item() for p in r.model.parameters())
print(json.dumps({"accuracy": r.accuracy, "loss": r.loss, "weights": weights,
                  "threads": torch.get_num_threads(),
                  "capability": torch.backends.cpu.get_cpu_capability()}))
