"""The broad benchmark's problems: COCO's BBOB functions, noisy and mixed variants, real tasks.

A *problem* is a function family in one dimension (``bbob_f15_d5``); each seed of a run gets
its own *instance* of it, and which instances a split may use is fixed here:

- ``dev`` (where every setting of the engine and the protocol is chosen): BBOB instance
  indices 1-5 (seed s -> index 1 + s mod 5) and the real tasks marked ``dev``;
- ``test`` (only reported): BBOB instance indices 6-15 (seed s -> 6 + s mod 10) and the other
  real tasks. No instance or task of one split appears in the other.

Groups:

- ``bbob``: the 24 noiseless functions of ``cocoex`` (coco-experiment), box [-5, 5]^d, minimized;
  the optimum is f at COCO's own optimal parameter (``Problem._best_parameter``).
- ``noisy``: BBOB functions observed through COCO's noise models (bbob-noisy's definitions:
  Gaussian ``f·exp(β·N)``, Cauchy ``f + alpha·max(0, 1000 + [U < p]·N₁/|N₂|)``, plus 1.01e-8),
  drawn from the run's seed. The suite ``bbob-noisy`` of cocoex does not expose the noiseless
  value of a point, so regret could not be measured on it; the engine sees the noisy value,
  regret is the noiseless value of the points it evaluated.
- ``mixed``: BBOB functions over a mixed space: one log-scaled double, integers (21 levels)
  and a 5-way categorical (its levels mapped to coordinates in a random order fixed by the
  instance), the rest doubles. The optimum over the mixed space is not known: a reference is
  computed (random points, then L-BFGS-B on the continuous coordinates of the best discrete
  combinations), and the report takes the lower of it and the best any run found.
- ``real``: scikit-learn models on its bundled data sets (no downloads): cross-validation error
  with folds shuffled by the instance. Optimum unknown: the best any run found on that instance.
- ``quality``: bench_quality's problems (the ones the engine's settings were first chosen on),
  for before/after runs of an engine change; one instance in both splits, never reported as
  either.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from suggestion_server.optimizer.api import AssignmentValue, ParameterSpec

Assignments = Mapping[str, AssignmentValue]
Split = Literal["dev", "test"]
Group = Literal["bbob", "noisy", "mixed", "real", "quality"]

BBOB_DIMENSIONS = (2, 5, 10, 20)
BBOB_FUNCTIONS = tuple(range(1, 25))
DEV_INSTANCES = tuple(range(1, 6))
TEST_INSTANCES = tuple(range(6, 16))
# BBOB's multimodal functions (groups 3-5 of the suite's definition).
MULTIMODAL = frozenset(range(15, 25))
BBOB_NAMES = {
    1: "sphere",
    2: "ellipsoid",
    3: "Rastrigin",
    4: "Bueche-Rastrigin",
    5: "linear slope",
    6: "attractive sector",
    7: "step ellipsoid",
    8: "Rosenbrock",
    9: "Rosenbrock rotated",
    10: "ellipsoid rotated",
    11: "discus",
    12: "bent cigar",
    13: "sharp ridge",
    14: "different powers",
    15: "Rastrigin rotated",
    16: "Weierstrass",
    17: "Schaffer F7",
    18: "Schaffer F7 ill-cond.",
    19: "Griewank-Rosenbrock",
    20: "Schwefel",
    21: "Gallagher 101 peaks",
    22: "Gallagher 21 peaks",
    23: "Katsuura",
    24: "Lunacek bi-Rastrigin",
}


@dataclass(frozen=True)
class Instance:
    """One instance of a problem, ready to evaluate in this process.

    ``evaluate`` returns (the value the optimizer is told, the true value regret is measured
    on): equal unless the problem is noisy. ``optimum`` is None when only a reference exists."""

    parameters: tuple[ParameterSpec, ...]
    evaluate: Callable[[Assignments], tuple[float, float]]
    optimum: float | None
    reference: float | None
    noisy: bool
    instance_id: str


@dataclass(frozen=True)
class BroadProblem:
    """A problem: ``make(split, seed)`` builds the seed's instance of the split."""

    name: str
    label: str
    group: Group
    dimension: int
    make: Callable[[Split, int], Instance]
    needs: tuple[str, ...] = ()
    splits: tuple[Split, ...] = ("dev", "test")
    multimodal: bool = False
    deterministic: bool = True


def instance_index(split: Split, seed: int) -> int:
    """The BBOB instance index of ``seed`` in ``split`` (the split's instances in turn)."""
    pool = DEV_INSTANCES if split == "dev" else TEST_INSTANCES
    return pool[seed % len(pool)]


@functools.lru_cache(maxsize=64)
def _coco(function: int, dimension: int, index: int) -> tuple[Any, float, np.ndarray]:
    """The cocoex problem, its optimal value and parameter (cached per process)."""
    import cocoex

    options = f"function_indices:{function} dimensions:{dimension} instance_indices:{index}"
    problem = cocoex.Suite("bbob", "", options)[0]
    # COCO writes its optimal parameter to a file in the working directory.
    with tempfile.TemporaryDirectory() as directory:
        cwd = os.getcwd()
        os.chdir(directory)
        try:
            problem._best_parameter("print")
            xopt = np.loadtxt("._bbob_problem_best_parameter.txt", ndmin=1)
        finally:
            os.chdir(cwd)
    fopt = float(problem(xopt))
    # BBOB's optimal values are multiples of 0.01; the printed parameter loses digits.
    if abs(fopt - round(fopt, 2)) < 1e-6:
        fopt = round(fopt, 2)
    return problem, fopt, xopt


def _xs(dimension: int) -> tuple[ParameterSpec, ...]:
    return tuple(
        ParameterSpec(name=f"x{i}", type="double", low=-5.0, high=5.0) for i in range(dimension)
    )


def _vector(a: Assignments, dimension: int) -> np.ndarray:
    return np.array([float(a[f"x{i}"]) for i in range(dimension)])


def _bbob(function: int, dimension: int) -> BroadProblem:
    def make(split: Split, seed: int) -> Instance:
        index = instance_index(split, seed)
        problem, fopt, _ = _coco(function, dimension, index)

        def evaluate(a: Assignments) -> tuple[float, float]:
            value = float(problem(_vector(a, dimension)))
            return value, value

        return Instance(_xs(dimension), evaluate, fopt, None, False, problem.id)

    return BroadProblem(
        f"bbob_f{function}_d{dimension}",
        f"f{function} {BBOB_NAMES[function]} {dimension}-D",
        "bbob",
        dimension,
        make,
        needs=("cocoex",),
        multimodal=function in MULTIMODAL,
    )


NoiseModel = Literal["gauss", "cauchy"]
# (base function, noise model, severity label): bbob-noisy's severe models (beta = 1; alpha = 1,
# p = 0.2) on the base functions of f107, f109, f110, f112, f122, f128.
NOISY = (
    (1, "gauss", 107),
    (1, "cauchy", 109),
    (8, "gauss", 110),
    (8, "cauchy", 112),
    (17, "gauss", 122),
    (21, "gauss", 128),
)


def noisy_value(f: float, model: NoiseModel, rng: np.random.Generator) -> float:
    """COCO's severe noise on the function value above the optimum ``f`` (≥ 0)."""
    if model == "gauss":
        noisy = f * math.exp(rng.standard_normal())
    else:
        jump = rng.standard_normal() / (abs(rng.standard_normal()) + 1e-199)
        noisy = f + max(0.0, 1000.0 + (jump if rng.random() < 0.2 else 0.0))
    return noisy + 1.01e-8 if f >= 1e-8 else f


def _noisy(function: int, model: NoiseModel, coco_id: int, dimension: int) -> BroadProblem:
    def make(split: Split, seed: int) -> Instance:
        index = instance_index(split, seed)
        problem, fopt, _ = _coco(function, dimension, index)
        rng = np.random.default_rng([coco_id, dimension, seed, 17])

        def evaluate(a: Assignments) -> tuple[float, float]:
            value = float(problem(_vector(a, dimension)))
            return fopt + noisy_value(value - fopt, model, rng), value

        return Instance(_xs(dimension), evaluate, fopt, None, True, f"{problem.id}+{model}")

    return BroadProblem(
        f"noisy_f{coco_id}_d{dimension}",
        f"f{coco_id} ({BBOB_NAMES[function]}, {model} noise) {dimension}-D",
        "noisy",
        dimension,
        make,
        needs=("cocoex",),
        multimodal=function in MULTIMODAL,
        deterministic=False,
    )


_CATEGORIES = ("a", "b", "c", "d", "e")
_CATEGORY_LEVELS = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
_INT_LEVELS = 21  # 0..20 -> -5, -4.5, ..., 5
_LOG_LOW, _LOG_HIGH = 1e-4, 10.0


def mixed_parameters(dimension: int) -> tuple[ParameterSpec, ...]:
    """x0 log-scaled, then ints n1.., one categorical c, the rest doubles (see module doc)."""
    ints = 1 if dimension <= 5 else 2
    params = [ParameterSpec(name="x0", type="double", low=_LOG_LOW, high=_LOG_HIGH, log=True)]
    params += [
        ParameterSpec(name=f"n{i}", type="int", low=0, high=_INT_LEVELS - 1)
        for i in range(1, 1 + ints)
    ]
    params.append(ParameterSpec(name="c", type="categorical", categories=_CATEGORIES))
    params += [
        ParameterSpec(name=f"x{i}", type="double", low=-5.0, high=5.0)
        for i in range(2 + ints, dimension)
    ]
    return tuple(params)


def _mixed_to_vector(a: Assignments, dimension: int, levels: np.ndarray) -> np.ndarray:
    ints = 1 if dimension <= 5 else 2
    x = np.empty(dimension)
    span = math.log10(_LOG_HIGH) - math.log10(_LOG_LOW)
    x[0] = -5.0 + 10.0 * (math.log10(float(a["x0"])) - math.log10(_LOG_LOW)) / span
    for i in range(1, 1 + ints):
        x[i] = -5.0 + 0.5 * int(a[f"n{i}"])
    x[1 + ints] = levels[_CATEGORIES.index(str(a["c"]))]
    for i in range(2 + ints, dimension):
        x[i] = float(a[f"x{i}"])
    return x


@functools.lru_cache(maxsize=64)
def _mixed_reference(function: int, dimension: int, index: int, order: tuple[int, ...]) -> float:
    """The best value found over the mixed space by a deterministic search (see module doc)."""
    from scipy.optimize import minimize

    problem, _, _ = _coco(function, dimension, index)
    ints = 1 if dimension <= 5 else 2
    levels = _CATEGORY_LEVELS[list(order)]
    rng = np.random.default_rng(12345)
    discrete = [1 + i for i in range(ints)] + [1 + ints]
    count = 20_000
    points = rng.uniform(-5, 5, (count, dimension))
    for i in range(1, 1 + ints):
        points[:, i] = -5.0 + 0.5 * rng.integers(0, _INT_LEVELS, count)
    points[:, 1 + ints] = rng.choice(levels, count)
    values = np.array([float(problem(p)) for p in points])
    best = float(values.min())
    continuous = [i for i in range(dimension) if i not in discrete]
    seen: set[tuple[float, ...]] = set()
    for row in np.argsort(values):
        key = tuple(points[row, discrete])
        if key in seen:
            continue
        seen.add(key)
        start = points[row].copy()

        def f(u: np.ndarray, start: np.ndarray = start) -> float:
            x = start.copy()
            x[continuous] = u
            return float(problem(x))

        result = minimize(
            f, start[continuous], method="L-BFGS-B", bounds=[(-5, 5)] * len(continuous)
        )
        best = min(best, float(result.fun))
        if len(seen) >= 12:
            break
    return best


def _mixed(function: int, dimension: int) -> BroadProblem:
    def make(split: Split, seed: int) -> Instance:
        index = instance_index(split, seed)
        problem, _, _ = _coco(function, dimension, index)
        order = tuple(int(i) for i in np.random.default_rng([function, index]).permutation(5))
        levels = _CATEGORY_LEVELS[list(order)]

        def evaluate(a: Assignments) -> tuple[float, float]:
            value = float(problem(_mixed_to_vector(a, dimension, levels)))
            return value, value

        reference = _mixed_reference(function, dimension, index, order)
        return Instance(
            mixed_parameters(dimension), evaluate, None, reference, False, f"{problem.id}+mixed"
        )

    return BroadProblem(
        f"mixed_f{function}_d{dimension}",
        f"f{function} {BBOB_NAMES[function]} mixed {dimension}-D",
        "mixed",
        dimension,
        make,
        needs=("cocoex", "scipy"),
        multimodal=function in MULTIMODAL,
    )


MIXED = ((1, 5), (8, 5), (15, 5), (21, 5), (2, 10), (21, 10))


@functools.lru_cache(maxsize=8)
def _dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    loaded = getattr(datasets, f"load_{name}")()
    return np.asarray(loaded.data), np.asarray(loaded.target)


def _cv_error(model: Any, data: str, seed: int, folds: int = 3, regression: bool = False) -> float:
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score

    x, y = _dataset(data)
    splitter = (KFold if regression else StratifiedKFold)(folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of short trainings
        if regression:
            scores = cross_val_score(model, x, y, cv=splitter, scoring="neg_mean_squared_error")
            return float(-scores.mean() / np.var(y))  # MSE relative to the variance
        return float(1.0 - cross_val_score(model, x, y, cv=splitter).mean())


def _svc(a: Assignments, seed: int) -> float:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    model = make_pipeline(StandardScaler(), SVC(C=float(a["C"]), gamma=float(a["gamma"])))
    return _cv_error(model, "breast_cancer", seed)


def _knn(a: Assignments, seed: int) -> float:
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = KNeighborsClassifier(
        n_neighbors=int(a["n_neighbors"]), weights=str(a["weights"]), metric=str(a["metric"])
    )
    return _cv_error(make_pipeline(StandardScaler(), model), "wine", seed)


def _elastic_net(a: Assignments, seed: int) -> float:
    from sklearn.linear_model import ElasticNet
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = ElasticNet(alpha=float(a["alpha"]), l1_ratio=float(a["l1_ratio"]), max_iter=2000)
    return _cv_error(make_pipeline(StandardScaler(), model), "diabetes", seed, regression=True)


def _tree(a: Assignments, seed: int) -> float:
    from sklearn.tree import DecisionTreeClassifier

    model = DecisionTreeClassifier(
        max_depth=int(a["max_depth"]),
        min_samples_leaf=int(a["min_samples_leaf"]),
        min_samples_split=int(a["min_samples_split"]),
        ccp_alpha=float(a["ccp_alpha"]),
        criterion=str(a["criterion"]),
        random_state=0,
    )
    return _cv_error(model, "breast_cancer", seed)


def _logistic(a: Assignments, seed: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    weight = None if a["class_weight"] == "none" else "balanced"
    model = LogisticRegression(
        C=float(a["C"]), tol=float(a["tol"]), class_weight=weight, max_iter=100
    )
    return _cv_error(make_pipeline(StandardScaler(), model), "digits", seed)


def _mlp(a: Assignments, seed: int) -> float:
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = MLPClassifier(
        hidden_layer_sizes=(int(a["units"]),),
        alpha=float(a["alpha"]),
        learning_rate_init=float(a["learning_rate"]),
        batch_size=int(a["batch_size"]),
        activation=str(a["activation"]),
        max_iter=15,
        random_state=0,
    )
    return _cv_error(make_pipeline(StandardScaler(), model), "digits", seed)


def _p(name: str, kind: str, low: float = 0, high: float = 0, log: bool = False) -> ParameterSpec:
    return ParameterSpec(name=name, type=kind, low=low, high=high, log=log)  # type: ignore[arg-type]


def _c(name: str, *categories: str) -> ParameterSpec:
    return ParameterSpec(name=name, type="categorical", categories=categories)


REAL_TASKS: tuple[tuple[str, str, Split, tuple[ParameterSpec, ...], Callable[..., float]], ...] = (
    (
        "svc_breast_cancer",
        "RBF SVC on breast_cancer (log C, log gamma)",
        "dev",
        (_p("C", "double", 1e-2, 1e3, True), _p("gamma", "double", 1e-5, 1e1, True)),
        _svc,
    ),
    (
        "knn_wine",
        "k-NN on wine (k, weights, metric)",
        "dev",
        (
            _p("n_neighbors", "int", 1, 60),
            _c("weights", "uniform", "distance"),
            _c("metric", "euclidean", "manhattan", "chebyshev"),
        ),
        _knn,
    ),
    (
        "elasticnet_diabetes",
        "elastic net on diabetes (log alpha, l1 ratio; MSE / variance)",
        "dev",
        (_p("alpha", "double", 1e-4, 1e1, True), _p("l1_ratio", "double", 0.0, 1.0)),
        _elastic_net,
    ),
    (
        "tree_breast_cancer",
        "decision tree on breast_cancer (5 parameters, mixed)",
        "test",
        (
            _p("max_depth", "int", 1, 20),
            _p("min_samples_leaf", "int", 1, 60, True),
            _p("min_samples_split", "int", 2, 40),
            _p("ccp_alpha", "double", 1e-5, 1e-1, True),
            _c("criterion", "gini", "entropy", "log_loss"),
        ),
        _tree,
    ),
    (
        "logreg_digits",
        "logistic regression on digits (log C, log tol, class weight)",
        "test",
        (
            _p("C", "double", 1e-4, 1e2, True),
            _p("tol", "double", 1e-5, 1e-1, True),
            _c("class_weight", "none", "balanced"),
        ),
        _logistic,
    ),
    (
        "mlp_digits",
        "neural network (MLP, 15 epochs) on digits (5 parameters, mixed)",
        "test",
        (
            _p("units", "int", 4, 128, True),
            _p("alpha", "double", 1e-6, 1e-1, True),
            _p("learning_rate", "double", 1e-4, 1e-1, True),
            _p("batch_size", "int", 16, 256, True),
            _c("activation", "relu", "tanh", "logistic"),
        ),
        _mlp,
    ),
)


def _real(
    name: str,
    label: str,
    split: Split,
    parameters: tuple[ParameterSpec, ...],
    error: Callable[[Assignments, int], float],
) -> BroadProblem:
    def make(run_split: Split, seed: int) -> Instance:
        def evaluate(a: Assignments) -> tuple[float, float]:
            value = error(a, seed)
            return value, value

        return Instance(parameters, evaluate, None, None, False, f"{name}/folds{seed}")

    return BroadProblem(
        name, label, "real", len(parameters), make, needs=("sklearn",), splits=(split,)
    )


def _quality(name: str) -> BroadProblem:
    from benchmarks.quality_problems import PROBLEMS as QUALITY

    problem = QUALITY[name]

    def make(split: Split, seed: int) -> Instance:
        def evaluate(a: Assignments) -> tuple[float, float]:
            value = problem.objective(a)
            return value, value

        return Instance(
            problem.parameters, evaluate, problem.optimum, None, False, f"quality/{name}"
        )

    return BroadProblem(
        f"quality_{name}",
        f"{problem.label} (bench_quality)",
        "quality",
        len(problem.parameters),
        make,
        needs=problem.needs,
    )


QUALITY_PROBLEMS = (
    "branin",
    "hartmann3",
    "hartmann6",
    "rosenbrock4",
    "ackley5",
    "styblinski_tang8",
    "mixed5",
    "svc",
)


def all_problems() -> dict[str, BroadProblem]:
    """Every problem of the suite, by name."""
    problems = [_bbob(f, d) for d in BBOB_DIMENSIONS for f in BBOB_FUNCTIONS]
    problems += [_noisy(f, m, i, d) for d in (2, 5) for f, m, i in NOISY]  # type: ignore[arg-type]
    problems += [_mixed(f, d) for f, d in MIXED]
    problems += [_real(*task) for task in REAL_TASKS]
    problems += [_quality(name) for name in QUALITY_PROBLEMS]
    return {p.name: p for p in problems}


PROBLEMS = all_problems()
