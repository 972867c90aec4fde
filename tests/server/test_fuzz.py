"""Property-based fuzzing of every operation in /openapi.json (schemathesis): whatever the
request, the server answers without a 5xx and never with FastAPI's 422."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from tests.server.conftest import MIXED_SPEC, Api
from tests.support.server import RunningServer


@pytest.fixture(scope="module")
def api_schema(server: RunningServer) -> schemathesis.BaseSchema:
    """The live schema, with an experiment, suggestions and an observation to hit."""
    api = Api(server)
    eid = api.ok("POST", "/v1/experiments", json=copy.deepcopy(MIXED_SPEC))["id"]
    sid = api.ok("POST", f"/v1/experiments/{eid}/suggestions", json={})["id"]
    api.ok("POST", f"/v1/experiments/{eid}/suggestions", json={})
    api.ok("POST", f"/v1/experiments/{eid}/observations", json={"suggestion": sid, "value": 1.0})
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case: schemathesis.Case, server: RunningServer) -> None:
    response = case.call(base_url=server.url, auth=(server.token, ""), timeout=30)
    case.validate_response(response, checks=[not_a_server_error])
    assert response.status_code != 422, response.text


# Targeted fuzzing of the write paths on an existing experiment, where the schema-driven fuzzer
# above rarely gets past validation: any JSON in the places the wire accepts user data.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
assignment_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-20, 20),
    st.sampled_from(["relu", "tanh", "gelu", "x"]),
)
wild_bodies = st.fixed_dictionaries(
    {},
    optional={
        "suggestion": st.one_of(st.integers(-2, 10**20), st.text(max_size=5), json_values),
        "assignments": st.dictionaries(
            st.sampled_from(["lr", "layers", "act", "zz"]), assignment_values, max_size=4
        ),
        "values": st.lists(
            st.fixed_dictionaries(
                {"value": st.one_of(st.floats(allow_nan=False, allow_infinity=False), json_values)},
                optional={
                    "name": st.one_of(st.just("acc"), st.text(max_size=4), st.none()),
                    "value_stddev": json_values,
                },
            ),
            max_size=2,
        ),
        "value": json_values,
        "failed": json_values,
        "metadata": json_values,
        "no_optimize": json_values,
    },
)
plausible_metadata = st.one_of(
    json_values,
    st.dictionaries(
        st.text(max_size=12),
        st.one_of(st.text(max_size=30), st.integers(), st.floats(allow_nan=False), st.none()),
        max_size=5,
    ),
)
valid_assignments = st.fixed_dictionaries(
    {
        "lr": st.floats(1e-5, 1.0),
        "layers": st.integers(1, 8),
        "act": st.sampled_from(["relu", "tanh", "gelu"]),
    }
)
finite = st.floats(allow_nan=False, allow_infinity=False)
plausible_bodies = st.one_of(
    st.fixed_dictionaries(
        {"assignments": valid_assignments, "values": st.just([]).map(list)},
        optional={"metadata": plausible_metadata},
    ).flatmap(
        lambda b: st.builds(
            lambda v, sd: {**b, "values": [{"name": "acc", "value": v, "value_stddev": sd}]},
            finite,
            st.one_of(st.none(), st.floats(0, 10)),
        )
    ),
    st.fixed_dictionaries(
        {"assignments": valid_assignments, "failed": st.just(True)},
        optional={"metadata": plausible_metadata},
    ),
    st.fixed_dictionaries(
        {"suggestion": st.just("SID"), "value": finite}, optional={"metadata": plausible_metadata}
    ),
)
observation_bodies = st.one_of(plausible_bodies, wild_bodies)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(body=observation_bodies, metadata=plausible_metadata)
def test_write_paths_never_fail_with_5xx(
    server: RunningServer, body: dict[str, Any], metadata: Any
) -> None:
    api = Api(server)
    eid, sid = _target(server)
    if body.get("suggestion") == "SID":
        body = {**body, "suggestion": sid}
    created = api.post(f"/v1/experiments/{eid}/observations", json=body)
    assert created.status_code in (200, 400, 409), created.text
    updated_status(api, eid, sid, metadata)
    if created.status_code == 200:
        oid = created.json()["id"]
        changed = api.put(f"/v1/experiments/{eid}/observations/{oid}", json=body)
        assert changed.status_code in (200, 400), changed.text


def updated_status(api: Api, eid: str, sid: str, metadata: Any) -> int:
    updated = api.put(f"/v1/experiments/{eid}/suggestions/{sid}", json={"metadata": metadata})
    assert updated.status_code in (200, 400), updated.text
    return updated.status_code


_TARGETS: dict[str, tuple[str, str]] = {}


def _target(server: RunningServer) -> tuple[str, str]:
    """One experiment and open suggestion per server, created on first use."""
    if server.url not in _TARGETS:
        api = Api(server)
        eid = api.ok("POST", "/v1/experiments", json=copy.deepcopy(MIXED_SPEC))["id"]
        sid = api.ok("POST", f"/v1/experiments/{eid}/suggestions", json={})["id"]
        _TARGETS[server.url] = (eid, sid)
    return _TARGETS[server.url]
