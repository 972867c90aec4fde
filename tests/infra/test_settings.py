"""Settings: context keys and TOML merge, and one-line errors naming the bad setting."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from infra.settings import FleetSettings, SettingsError, load_settings
from tests.infra.support import REPO, VENV_BIN, tool_env

EXAMPLE = REPO / "examples" / "fleet.toml"


def test_defaults_need_only_the_experiment_id() -> None:
    settings = load_settings({"experiment_id": "42"}, cwd=REPO)
    assert settings == FleetSettings(experiment_id="42")
    assert settings.stack_name == "optfleet-42"
    assert settings.architecture == "x86_64"
    assert not settings.uses_spot


def test_context_values_are_parsed_from_strings() -> None:
    settings = load_settings(
        {
            "experiment_id": "7",
            "fleet_size": "3",
            "instance_types": "c7g.large, m7g.large",
            "spot_percentage": "50",
            "max_price": "0.2",
            "subnet_ids": "subnet-0123abcd,subnet-4567ef01",
            "vpc_id": "vpc-0123abcd",
            "tags": "Team=ml, CostCenter=9",
            "api_url": "https://api.example.com/",
        },
        cwd=REPO,
    )
    assert settings.fleet_size == 3
    assert settings.instance_types == ("c7g.large", "m7g.large")
    assert settings.architecture == "arm64"
    assert settings.max_price == 0.2
    assert settings.subnet_ids == ("subnet-0123abcd", "subnet-4567ef01")
    assert settings.tags == {"Team": "ml", "CostCenter": "9"}
    assert settings.api_url == "https://api.example.com"
    assert settings.api_port == 443


def test_example_toml_loads_and_context_overrides_it() -> None:
    settings = load_settings({"config": str(EXAMPLE), "fleet_size": "9"}, cwd=REPO)
    assert settings.experiment_id == "42"
    assert settings.fleet_size == 9
    assert settings.instance_types == ("c7i.large", "c6i.large", "m7i.large")
    assert settings.spot_percentage == 75
    assert settings.tags == {"Team": "ml-research", "CostCenter": "1234"}


def test_toml_workload_path_is_relative_to_the_toml_file(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "fleet.toml").write_text('experiment_id = "5"\nworkload = "work"\n')
    settings = load_settings({"config": str(tmp_path / "fleet.toml")}, cwd=REPO)
    assert settings.workload == (tmp_path / "work").resolve()


BAD: list[tuple[dict[str, Any], str, str]] = [
    ({}, "experiment_id", "required"),
    ({"experiment_id": "has space"}, "experiment_id", "letters, digits"),
    ({"experiment_id": "1", "fleet_size": "0"}, "fleet_size", "from 1 to 5000; got 0"),
    ({"experiment_id": "1", "fleet_size": "-3"}, "fleet_size", "got -3"),
    ({"experiment_id": "1", "fleet_size": "two"}, "fleet_size", "whole number"),
    ({"experiment_id": "1", "instance_types": "m7i.huge"}, "instance_types", "unknown size 'huge'"),
    (
        {"experiment_id": "1", "instance_types": "zz9.large"},
        "instance_types",
        "unknown instance family 'zz9'",
    ),
    ({"experiment_id": "1", "instance_types": "m7ilarge"}, "instance_types", "family.size"),
    (
        {"experiment_id": "1", "instance_types": "m7i.large,m7g.large"},
        "instance_types",
        "mixes arm64 and x86_64",
    ),
    ({"experiment_id": "1", "spot_percentage": "101"}, "spot_percentage", "from 0 to 100; got 101"),
    ({"experiment_id": "1", "spot_percentage": "-1"}, "spot_percentage", "got -1"),
    ({"experiment_id": "1", "max_price": "0.1"}, "max_price", "spot_percentage > 0"),
    ({"experiment_id": "1", "on_demand_base": "5"}, "on_demand_base", "from 0 to 1"),
    (
        {"experiment_id": "1", "log_retention_days": "10"},
        "log_retention_days",
        "CloudWatch accepts only",
    ),
    ({"experiment_id": "1", "when_done": "explode"}, "when_done", "stay, stop, terminate"),
    (
        {"experiment_id": "1", "spot_percentage": "50", "when_done": "stop"},
        "when_done",
        "cannot stop Spot instances",
    ),
    ({"experiment_id": "1", "vpc_id": "vpc-0123abcd"}, "subnet_ids", "required with vpc_id"),
    ({"experiment_id": "1", "subnet_ids": "subnet-0123abcd"}, "vpc_id", "required with subnet_ids"),
    ({"experiment_id": "1", "api_url": "ftp://x"}, "api_url", "http(s) URL"),
    ({"experiment_id": "1", "api_url": "https://x.example.com/v1"}, "api_url", "without /v1"),
    ({"experiment_id": "1", "token_secret": "arn:aws:s3:::bucket"}, "token_secret", "secret ARN"),
    ({"experiment_id": "1", "ami": "ubuntu"}, "ami", "AMI id"),
    ({"experiment_id": "1", "tags": "Experiment=9"}, "tags", "set by optfleet"),
    ({"experiment_id": "1", "tags": "novalue"}, "tags", "Key=Value"),
    ({"experiment_id": "1", "root_volume_gb": "4"}, "root_volume_gb", "from 8"),
    ({"experiment_id": "1", "workload": "does-not-exist"}, "workload", "expected a directory"),
]


@pytest.mark.parametrize(
    ("context", "setting", "fragment"), BAD, ids=[b[1] + ":" + json.dumps(b[0]) for b in BAD]
)
def test_bad_settings_raise_one_line_naming_the_setting(
    context: dict[str, Any], setting: str, fragment: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(context, cwd=REPO)
    message = str(caught.value)
    assert caught.value.setting == setting
    assert message.startswith(f"setting {setting!r}: ")
    assert fragment in message
    assert "\n" not in message


def test_malformed_toml_names_the_config_setting(tmp_path: Path) -> None:
    (tmp_path / "fleet.toml").write_text('experiment_id = "5"\nfleet_size = [\n')
    with pytest.raises(SettingsError) as caught:
        load_settings({"config": str(tmp_path / "fleet.toml")}, cwd=REPO)
    assert caught.value.setting == "config"
    assert "is not valid TOML" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unknown_toml_key_is_named(tmp_path: Path) -> None:
    (tmp_path / "fleet.toml").write_text('experiment_id = "5"\nfleet_sise = 3\n')
    with pytest.raises(SettingsError) as caught:
        load_settings({"config": str(tmp_path / "fleet.toml")}, cwd=REPO)
    assert caught.value.setting == "fleet_sise"


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"config": str(tmp_path / "nope.toml")}, cwd=REPO)
    assert caught.value.setting == "config"


def test_app_entry_point_prints_one_line_and_exits_2() -> None:
    """As the CDK CLI runs it: context in CDK_CONTEXT_JSON, the app script as a subprocess."""
    env = tool_env(
        {"CDK_CONTEXT_JSON": json.dumps({"experiment_id": "42", "spot_percentage": "150"})}
    )
    result = subprocess.run(
        [str(VENV_BIN / "python"), "infra/app.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if not line.startswith("b'")]
    assert lines == [
        "optfleet: setting 'spot_percentage': expected a whole number from 0 to 100; got 150"
    ]
