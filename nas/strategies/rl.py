"""The Zoph & Le controller: an LSTM policy over the decisions, trained by REINFORCE.

The reward is validation accuracy, the baseline an exponential moving average of it, and an
entropy bonus keeps the policy exploring. The policy is derived from the study: it replays
the completed trials in trial-number order (from scratch when one arrives out of order), so
another worker or a resumed run holds the same policy for the same trials.
"""

from __future__ import annotations

import random
from typing import Any

import torch
from optuna.study import Study
from optuna.trial import FrozenTrial
from torch import nn

from nas.strategies.base import MAX_RESAMPLES, SpaceSampler, completed, objective

__all__ = ["Controller", "ReinforceController"]


class Controller(nn.Module):
    """Autoregressive policy: each decision's choice feeds the next step (ENAS-style).

    ``factorised=True`` drops the recurrence: independent logits per decision.
    """

    def __init__(self, sizes: list[int], hidden: int = 64, factorised: bool = False) -> None:
        super().__init__()
        self.sizes, self.factorised = sizes, factorised
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.embed = nn.ModuleList(nn.Embedding(n, hidden) for n in sizes)
        self.cell = nn.LSTMCell(hidden, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in sizes)
        self.logits = nn.ParameterList(nn.Parameter(torch.zeros(n)) for n in sizes)

    def forward(self, choices: list[int] | None, gen: torch.Generator | None = None
                ) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        """Sample (choices=None) or score given choices: (choices, log-prob, entropy)."""
        picked, logp, entropy = [], torch.zeros(()), torch.zeros(())
        x, state = self.start, None
        for i in range(len(self.sizes)):
            if self.factorised:
                logits = self.logits[i]
            else:
                h, c = self.cell(x, state)
                state = (h, c)
                logits = self.heads[i](h)[0] / 2.0  # temperature: softer early policy
            dist = torch.distributions.Categorical(logits=logits)
            k = choices[i] if choices is not None else int(
                torch.multinomial(dist.probs.detach(), 1, generator=gen))
            picked.append(k)
            logp = logp + dist.log_prob(torch.tensor(k))
            entropy = entropy + dist.entropy()
            x = self.embed[i](torch.tensor([k]))
        return picked, logp, entropy


class ReinforceController(SpaceSampler):
    """REINFORCE with a moving-average baseline and an entropy bonus."""

    def __init__(self, space, seed: int = 0, feasible=None, lr: float = 0.02,
                 baseline_decay: float = 0.8, entropy_weight: float = 1e-3,
                 factorised: bool = False, warmup: int = 5) -> None:
        super().__init__(space, seed, feasible)
        self.names = list(space.decisions)
        self.lr, self.decay, self.entropy_weight = lr, baseline_decay, entropy_weight
        self.factorised, self.warmup = factorised, warmup
        self._reset()

    def _reset(self) -> None:
        torch.manual_seed(self.seed)
        sizes = [len(self.space.decisions[n]) for n in self.names]
        self.policy = Controller(sizes, factorised=self.factorised)
        self.opt = torch.optim.Adam(self.policy.parameters(), lr=self.lr)
        self.baseline: float | None = None
        self.seen: list[int] = []  # trial numbers replayed, in order

    def _index(self, params: dict[str, Any]) -> list[int]:
        return [self.space.decisions[n].index(params[n]) for n in self.names]

    def update(self, params: dict[str, Any], reward: float) -> None:
        """One REINFORCE step on an evaluated assignment."""
        if self.baseline is None:
            self.baseline = reward
        advantage = reward - self.baseline
        self.baseline = self.decay * self.baseline + (1 - self.decay) * reward
        _, logp, entropy = self.policy(self._index(params))
        loss = -(advantage * logp + self.entropy_weight * entropy)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def _catch_up(self, study: Study) -> None:
        done = completed(study)
        numbers = [t.number for t in done]
        if numbers[: len(self.seen)] != self.seen:  # out of order, or another study
            self._reset()
        for t in done[len(self.seen):]:
            self.update(t.params, objective(t))
            self.seen.append(t.number)

    def propose(self, study: Study, trial: FrozenTrial, rng: random.Random) -> dict[str, Any]:
        self._catch_up(study)
        if len(self.seen) < self.warmup:
            return self.random_assignment(rng)
        gen = torch.Generator().manual_seed(rng.getrandbits(62))
        a: dict[str, Any] = {}
        for _ in range(MAX_RESAMPLES):
            with torch.no_grad():
                picked, _, _ = self.policy(None, gen)
            a = {n: self.space.decisions[n][k] for n, k in zip(self.names, picked)}
            if self.feasible(a):
                return a
        return a
