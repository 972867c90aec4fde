"""Learning-curve objectives for bench_learning_curves: one value per step (epoch), minimized.

Nobody here designed them:

- **Real training** with scikit-learn's ``partial_fit`` (one epoch per call) on its bundled data
  sets (no download): ``SGDClassifier`` (logistic loss, elastic net) on ``load_wine`` and
  ``MLPClassifier`` (one hidden layer, Adam) on ``load_breast_cancer`` (small data sets, so a
  full benchmark run fits on one core). The value after each
  epoch is the validation log loss (stratified 60/40 split, fixed; features standardized on the
  training part). Deterministic given the model's ``random_state``.
- **MF-Hartmann** 3-D and 6-D as defined by mf-prior-bench (Mallik et al., "PriorBand",
  NeurIPS 2023; package ``mf-prior-bench``, ``mfpbench/synthetic/hartmann``), after the
  multi-fidelity Hartmann of Kandasamy et al. (BOCA, ICML 2017): at fidelity z in [1, 100],
  s = log z / log 100, the Hartmann function with its weights alpha lowered by
  ``bias * (1 - s)`` plus noise ``|N(0, 1)| * noise * (1 - s)``; z = 100 is the plain Hartmann
  function. Presets ("good": bias 2.5, noise 2.0; "bad": 3.5, 4.0) are the package's. Epoch e
  of R is fidelity z = 100 e / R. Implemented here from the published formula (nothing is
  downloaded); the noise is drawn from a generator seeded by (seed, epoch, point) instead of
  the package's ``hash``, so it is reproducible across processes.

A step costs simulated instance-seconds (``epoch_seconds``): constant per epoch, except the MLP,
whose epoch costs more with more hidden units.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from benchmarks.quality_problems import _H3_A, _H3_P, _H6_A, _H6_P, _H_ALPHA
from suggestion_server.optimizer.api import AssignmentValue, ParameterSpec

Assignments = dict[str, AssignmentValue]
# A curve that diverged (NaN/inf weights) reports this: worse than any real log loss here.
DIVERGED = 10.0


class Curve(Protocol):
    """One training run: ``next_value`` trains one more epoch and returns its value."""

    def next_value(self) -> float: ...


@dataclass(frozen=True)
class LCProblem:
    """A learning-curve problem: its space, its length in epochs and the cost of an epoch."""

    name: str
    title: str
    parameters: tuple[ParameterSpec, ...]
    max_epochs: int
    start: Callable[[Assignments, int], Curve]  # (assignments, seed) -> a fresh run
    epoch_seconds: Callable[[Assignments], float]
    nominal_epoch_seconds: float  # what budgets are counted in
    conditionals: tuple[()] = ()  # none (quality_methods.search_spec reads it)


# --- scikit-learn ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    classes: np.ndarray


@functools.cache
def _split(dataset: str) -> _Split:
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = getattr(datasets, f"load_{dataset}")(return_X_y=True)
    x_train, x_valid, y_train, y_valid = train_test_split(
        x, y, test_size=0.4, stratify=y, random_state=0
    )
    scaler = StandardScaler().fit(x_train)
    return _Split(
        scaler.transform(x_train), y_train, scaler.transform(x_valid), y_valid, np.unique(y)
    )


def _log_loss(split: _Split, proba: np.ndarray) -> float:
    if not np.all(np.isfinite(proba)):
        return DIVERGED
    index = np.searchsorted(split.classes, split.y_valid)
    picked = np.clip(proba[np.arange(len(index)), index], 1e-15, 1.0)
    return min(float(-np.mean(np.log(picked))), DIVERGED)


class _SklearnCurve:
    def __init__(self, model: Any, dataset: str) -> None:
        self._model = model
        self._split = _split(dataset)

    def next_value(self) -> float:
        split = self._split
        try:
            self._model.partial_fit(split.x_train, split.y_train, classes=split.classes)
            proba = self._model.predict_proba(split.x_valid)
        except (ValueError, FloatingPointError, OverflowError):
            return DIVERGED
        return _log_loss(split, proba)


def _sgd(a: Assignments, seed: int, dataset: str = "wine") -> Curve:
    import warnings

    from sklearn.linear_model import SGDClassifier

    warnings.filterwarnings("ignore", module="sklearn")
    model = SGDClassifier(
        loss="log_loss",
        penalty="elasticnet",
        alpha=float(a["alpha"]),
        l1_ratio=float(a["l1_ratio"]),
        learning_rate="invscaling",
        eta0=float(a["eta0"]),
        power_t=float(a["power_t"]),
        random_state=seed,
    )
    return _SklearnCurve(model, dataset)


def _mlp(a: Assignments, seed: int) -> Curve:
    import warnings

    from sklearn.neural_network import MLPClassifier

    warnings.filterwarnings("ignore", module="sklearn")
    model = MLPClassifier(
        hidden_layer_sizes=(int(a["hidden"]),),
        alpha=float(a["alpha"]),
        learning_rate_init=float(a["learning_rate_init"]),
        batch_size=int(a["batch_size"]),
        random_state=seed,
    )
    return _SklearnCurve(model, "breast_cancer")


def _double(name: str, low: float, high: float, log: bool = False) -> ParameterSpec:
    return ParameterSpec(name, "double", low, high, log=log)


SGD_WINE = LCProblem(
    name="sgd_wine",
    title="SGDClassifier on wine (4-D, log loss)",
    parameters=(
        _double("alpha", 1e-6, 1e-1, log=True),
        _double("eta0", 1e-4, 1.0, log=True),
        _double("power_t", 0.05, 1.0),
        _double("l1_ratio", 0.0, 1.0),
    ),
    max_epochs=27,
    start=_sgd,
    epoch_seconds=lambda a: 10.0,
    nominal_epoch_seconds=10.0,
)

MLP_BREAST_CANCER = LCProblem(
    name="mlp_breast_cancer",
    title="MLPClassifier on breast_cancer (4-D, log loss)",
    parameters=(
        ParameterSpec("hidden", "int", 4, 64, log=True),
        _double("alpha", 1e-6, 1e-1, log=True),
        _double("learning_rate_init", 1e-4, 1e-1, log=True),
        ParameterSpec("batch_size", "int", 16, 128, log=True),
    ),
    max_epochs=27,
    start=_mlp,
    # Bigger networks cost more per epoch: 5 s at 4 units, 25 s at 64.
    epoch_seconds=lambda a: 5.0 + 20.0 * (int(a["hidden"]) - 4) / 60,
    nominal_epoch_seconds=10.0,
)


# --- MF-Hartmann (mf-prior-bench) --------------------------------------------------------------
# Hartmann's A, P and alpha: the quality benchmark's.
Z_MAX = 100.0


def mf_hartmann(
    x: np.ndarray, z: float, *, bias: float, noise: float, rng: np.random.Generator
) -> float:
    """mf-prior-bench's MF-Hartmann (3-D or 6-D by ``len(x)``) at fidelity ``z`` in [1, 100]."""
    a, p = (_H3_A, _H3_P) if len(x) == 3 else (_H6_A, _H6_P)
    s = math.log(z) / math.log(Z_MAX)
    alpha = _H_ALPHA - bias * (1.0 - s)
    inner = np.sum(a * (x[np.newaxis, :] - p) ** 2, axis=1)
    value = -float(np.sum(alpha * np.exp(-inner)))
    return value + abs(float(rng.normal())) * noise * (1.0 - s)


class _HartmannCurve:
    def __init__(self, x: np.ndarray, seed: int, max_epochs: int, bias: float, noise: float):
        self._x, self._seed, self._r = x, seed, max_epochs
        self._bias, self._noise = bias, noise
        self._epoch = 0
        self._point = zlib.crc32(x.tobytes())

    def next_value(self) -> float:
        self._epoch += 1
        rng = np.random.default_rng([self._seed, self._epoch, self._point])
        z = Z_MAX * self._epoch / self._r
        return mf_hartmann(self._x, z, bias=self._bias, noise=self._noise, rng=rng)


def _hartmann_problem(dims: int, preset: str, bias: float, noise: float) -> LCProblem:
    names = tuple(f"x{i}" for i in range(dims))
    max_epochs = 27

    def start(a: Assignments, seed: int) -> Curve:
        x = np.array([float(a[n]) for n in names])
        return _HartmannCurve(x, seed, max_epochs, bias, noise)

    return LCProblem(
        name=f"mfh{dims}_{preset}",
        title=f"MF-Hartmann {dims}-D, '{preset}' (bias {bias}, noise {noise})",
        parameters=tuple(_double(n, 0.0, 1.0) for n in names),
        max_epochs=max_epochs,
        start=start,
        epoch_seconds=lambda a: 10.0,
        nominal_epoch_seconds=10.0,
    )


MFH3_GOOD = _hartmann_problem(3, "good", 2.5, 2.0)
MFH6_BAD = _hartmann_problem(6, "bad", 3.5, 4.0)

PROBLEMS: dict[str, LCProblem] = {
    p.name: p for p in (SGD_WINE, MLP_BREAST_CANCER, MFH3_GOOD, MFH6_BAD)
}

# --- development only --------------------------------------------------------------------------
# Settings of the engine or the stopping rules are chosen on these, never on ``PROBLEMS`` (the
# reported test set); the section's default run leaves them out.
SGD_BREAST_CANCER = LCProblem(
    name="dev_sgd_breast_cancer",
    title="SGDClassifier on breast_cancer (4-D, log loss; development only)",
    parameters=SGD_WINE.parameters,
    max_epochs=27,
    start=lambda a, seed: _sgd(a, seed, "breast_cancer"),
    epoch_seconds=lambda a: 10.0,
    nominal_epoch_seconds=10.0,
)

DEV_PROBLEMS: dict[str, LCProblem] = {p.name: p for p in (SGD_BREAST_CANCER,)}
ALL_PROBLEMS: dict[str, LCProblem] = {**PROBLEMS, **DEV_PROBLEMS}
