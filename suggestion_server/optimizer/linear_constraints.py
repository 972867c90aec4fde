"""Linear constraints on double parameters: checking points and finding that a region exists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.optimize import linprog

from suggestion_server.optimizer.api import AssignmentValue, LinearConstraint, ParameterSpec

# Rounding of a feasible point's doubles must not make it infeasible: a point counts as
# satisfying a constraint within this relative tolerance of the threshold.
TOLERANCE = 1e-9


def satisfies(
    params: Mapping[str, AssignmentValue], constraints: Sequence[LinearConstraint]
) -> bool:
    """Whether ``params`` satisfies every constraint."""
    for constraint in constraints:
        total = sum(weight * float(params[name]) for name, weight in constraint.terms)
        slack = TOLERANCE * max(1.0, abs(constraint.threshold))
        if constraint.type == "greater_than" and total < constraint.threshold - slack:
            return False
        if constraint.type == "less_than" and total > constraint.threshold + slack:
            return False
    return True


def check_linear_constraints(
    parameters: Sequence[ParameterSpec], constraints: Sequence[LinearConstraint]
) -> None:
    """``ValueError`` naming the constraint if it uses an unknown or non-double parameter, or
    if the constraints leave no point of the box feasible."""
    by_name = {p.name: p for p in parameters}
    for index, constraint in enumerate(constraints):
        where = f"linear_constraints[{index}]"
        if constraint.type not in ("greater_than", "less_than"):
            raise ValueError(f"{where}.type must be greater_than or less_than")
        if not constraint.terms:
            raise ValueError(f"{where}.terms: at least one term is required")
        for name, _weight in constraint.terms:
            param = by_name.get(name)
            if param is None:
                raise ValueError(f"{where}.terms: unknown parameter {name!r}")
            if param.type != "double":
                raise ValueError(
                    f"{where}.terms: parameter {name!r} is {param.type}; linear constraints "
                    "apply to double parameters only"
                )
    if not constraints:
        return
    names = sorted({name for c in constraints for name, _ in c.terms})
    rows, bounds_rhs = [], []
    for constraint in constraints:
        weights = dict(constraint.terms)
        row = [weights.get(name, 0.0) for name in names]
        if constraint.type == "greater_than":  # linprog wants A x <= b
            rows.append([-w for w in row])
            bounds_rhs.append(-constraint.threshold)
        else:
            rows.append(row)
            bounds_rhs.append(constraint.threshold)
    box = [(by_name[n].low, by_name[n].high) for n in names]
    result = linprog(
        np.zeros(len(names)), A_ub=np.array(rows), b_ub=np.array(bounds_rhs), bounds=box
    )
    if result.status == 2:
        raise ValueError("linear_constraints: no assignment within the bounds satisfies them all")


def feasible_rows(
    params: Sequence[Mapping[str, AssignmentValue]], constraints: Sequence[LinearConstraint]
) -> np.ndarray:
    """One boolean per assignment: whether it satisfies every constraint."""
    return np.array([satisfies(p, constraints) for p in params], dtype=bool)
