"""`npx cdk synth` through the real CLI, then cfn-lint on every template; bad settings fail fast."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.infra.support import REPO, VENV_BIN, run_cdk, tool_env


@pytest.fixture(scope="module")
def cli_outdirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Synthesize the default fleet and the example fleet.toml without AWS credentials."""
    env = tool_env(
        {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_PROFILE": "optfleet-none"}
    )
    outdirs = []
    for name, args in (
        ("default", ["-c", "experiment_id=42"]),
        ("example", ["-c", "config=examples/fleet.toml"]),
        # The documented way to pin the environment: cdk-nag must still match every finding.
        (
            "pinned",
            ["-c", "experiment_id=43", "-c", "account=123456789012", "-c", "region=us-east-1"],
        ),
    ):
        outdir = tmp_path_factory.mktemp(name)
        result = run_cdk(["synth", "--quiet", "--output", str(outdir), *args], cwd=REPO, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        outdirs.append(outdir)
    return outdirs


def test_cli_synth_writes_the_named_stack(cli_outdirs: list[Path]) -> None:
    assert (cli_outdirs[0] / "optfleet-42.template.json").is_file()
    assert (cli_outdirs[1] / "optfleet-42.template.json").is_file()
    assert (cli_outdirs[2] / "optfleet-43.template.json").is_file()


def test_cfn_lint_is_clean_on_every_template(cli_outdirs: list[Path]) -> None:
    templates = [str(t) for outdir in cli_outdirs for t in outdir.glob("*.template.json")]
    assert len(templates) == 3
    result = subprocess.run(
        [str(VENV_BIN / "cfn-lint"), *templates],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_synth_with_a_bad_setting_stops_with_one_line_naming_it(tmp_path: Path) -> None:
    result = run_cdk(
        [
            "synth",
            "--quiet",
            "--output",
            str(tmp_path),
            "-c",
            "experiment_id=42",
            "-c",
            "fleet_size=0",
        ],
        cwd=REPO,
        env=tool_env(),
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("optfleet:")]
    assert lines == [
        "optfleet: setting 'fleet_size': expected a whole number from 1 to 5000; got 0"
    ]
    assert "Traceback" not in result.stderr
