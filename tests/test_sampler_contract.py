"""Optuna's own contract tests for third-party samplers, run over every strategy of ours.

``optuna.testing.pytest_samplers`` is what Optuna runs over its samplers: float, int and
categorical distributions, conditional and dynamic search spaces, NaN objectives, relative
sampling, multi-objective studies. Ours must behave in any study, not only in a NAS one.
"""

from __future__ import annotations

import pytest
from optuna.testing.pytest_samplers import (
    BasicSamplerTestCase,
    MultiObjectiveSamplerTestCase,
    RelativeSamplerTestCase,
)

import searchspace
from nas.strategies import OURS, make

SPACE = searchspace.load_space("nb201")


class TestOptunaSamplerContract(BasicSamplerTestCase, RelativeSamplerTestCase,
                                MultiObjectiveSamplerTestCase):
    @pytest.fixture(params=OURS)
    def sampler(self, request):
        return lambda: make(request.param, space=SPACE, seed=0)
