"""The boot script, for real: shellcheck, then run twice against a throwaway root with the real
wheels and the workers' Python (python3.11, as on AL2023), and `systemd-analyze verify` the units.

Only the S3 download is replaced: OPTFLEET_LOCAL_ASSETS points at the same archives CDK uploads.
"""

from __future__ import annotations

import glob
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from infra.settings import load_settings
from infra.user_data import AMI_PYTHON, AssetLocation, agent_settings, render_user_data
from infra.wheelhouse import build_wheelhouse, stage_workload, wheel_problems_for_python
from tests.infra.support import REPO

WORKLOAD = Path(__file__).parent / "data" / "workload"
WHEELHOUSE_HASH = "a" * 64
WORKLOAD_HASH = "b" * 64


def _ami_python() -> str:
    """python3.11 like the workers on Amazon Linux 2023, else the interpreter at hand."""
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    for candidate in [
        shutil.which(AMI_PYTHON),
        *sorted(glob.glob(f"{pyenv_root}/versions/3.11*/bin/python3.11")),
    ]:
        if (
            candidate
            and subprocess.run(
                [candidate, "--version"], capture_output=True, check=False
            ).returncode
            == 0
        ):
            return candidate
    return sys.executable


def _zip_folder(folder: Path, archive: Path) -> None:
    """Zip a folder the way CDK packages a directory asset (paths relative to the folder)."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                out.write(file, file.relative_to(folder))


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = load_settings(
        {
            "experiment_id": "42",
            "api_url": "https://api.example.com",
            "token_secret": "optfleet/api-token",
            "command": "python evaluate.py --fast 'two words'",
            "when_done": "terminate",
        },
        cwd=REPO,
    )
    text = render_user_data(
        experiment_id=settings.experiment_id,
        agent_pairs=agent_settings(settings, region="us-east-1"),
        wheelhouse=AssetLocation(
            s3_url=f"s3://cdk-assets-bucket/{WHEELHOUSE_HASH}.zip", asset_hash=WHEELHOUSE_HASH
        ),
        workload=AssetLocation(
            s3_url=f"s3://cdk-assets-bucket/{WORKLOAD_HASH}.zip", asset_hash=WORKLOAD_HASH
        ),
        region="us-east-1",
        log_group_name="/optfleet/42/agent",
    )
    path = tmp_path_factory.mktemp("userdata") / "user-data.sh"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("assets")
    _zip_folder(build_wheelhouse(), folder / "wheelhouse.zip")
    mp = pytest.MonkeyPatch()
    mp.setenv("PIP_NO_INDEX", "1")  # workload wheels from the local wheelhouse: no download
    mp.setenv("PIP_FIND_LINKS", str(REPO / ".stamps" / "wheelhouse"))
    try:
        _zip_folder(stage_workload(WORKLOAD, architecture="x86_64"), folder / "workload.zip")
    finally:
        mp.undo()
    return folder


@pytest.fixture(scope="module")
def installed(
    script: Path, assets: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Run the boot script twice against one throwaway root."""
    root = tmp_path_factory.mktemp("root")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(root),
        "OPTFLEET_ROOT": str(root),
        "OPTFLEET_LOCAL_ASSETS": str(assets),
        "OPTFLEET_PYTHON": _ami_python(),
        "PIP_NO_INDEX": "1",  # belt and braces: the script must not need an index anyway
    }
    runs = [
        subprocess.run(
            ["bash", str(script)], env=env, capture_output=True, text=True, timeout=600, check=False
        )
        for _ in range(2)
    ]
    return {"root": root, "runs": runs, "python": env["OPTFLEET_PYTHON"]}


def test_shellcheck_is_clean(script: Path) -> None:
    result = subprocess.run(
        ["shellcheck", "-s", "bash", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_script_holds_no_token(script: Path) -> None:
    text = script.read_text()
    assert "SIGOPT_API_TOKEN" not in text
    assert "OPTFLEET_TOKEN_SECRET=optfleet/api-token" in text


def test_install_succeeds_twice(installed: dict[str, Any]) -> None:
    first, second = installed["runs"]
    assert first.returncode == 0, first.stderr[-4000:]
    assert second.returncode == 0, second.stderr[-4000:]
    assert "opt/optfleet/venv is up to date" in second.stderr


def test_agent_venv_runs_on_the_ami_python(installed: dict[str, Any]) -> None:
    venv_python = installed["root"] / "opt/optfleet/venv/bin/python"
    expected = subprocess.run(
        [installed["python"], "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    probe = subprocess.run(
        [
            str(venv_python),
            "-c",
            "import sys, boto3, requests, worker_bootstrap.cli, infra.runtime.journal_shipper;"
            " print(sys.version_info[:2])",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout == expected


def test_unit_env_file_and_state_dir(installed: dict[str, Any]) -> None:
    root: Path = installed["root"]
    unit = (root / "etc/systemd/system/optfleet-agent.service").read_text()
    assert (
        "ExecStart=/opt/optfleet/venv/bin/worker-bootstrap run --config /etc/optfleet/agent.env"
        in unit
    )
    env_file = root / "etc/optfleet/agent.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    env_text = env_file.read_text()
    for expected in (
        "OPTFLEET_EXPERIMENT_ID=42",
        "SIGOPT_API_URL=https://api.example.com",
        "OPTFLEET_TOKEN_SECRET=optfleet/api-token",
        "OPTFLEET_WHEN_DONE=terminate",
        "OPTFLEET_WORKDIR=/opt/optfleet/workload",
        "AWS_REGION=us-east-1",
    ):
        assert expected in env_text
    assert "/opt/optfleet/bin/in-workload-env python evaluate.py --fast" in env_text
    assert "TOKEN=" not in env_text.replace("OPTFLEET_TOKEN_SECRET=", "")
    assert "OPTFLEET_ALLOW_PLAINTEXT" not in env_text  # https: no plaintext opt-out
    assert stat.S_IMODE((root / "var/lib/optfleet").stat().st_mode) == 0o700


def _mirror_ami_for_verify(root: Path, venv: str = "opt/optfleet/venv") -> None:
    """Give the throwaway root what the AMI has and `verify --root` looks for: the OS's units
    (sysinit.target, network-online.target, ...) and the interpreter the venv links to."""
    units = root / "usr/lib/systemd/system"
    if not units.exists():
        host_units = next(
            p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()
        )
        shutil.copytree(host_units, units, symlinks=True)
    interpreter = Path(os.path.realpath(root / venv / "bin/python"))
    inside = (
        root / interpreter.relative_to("/")
        if not str(interpreter).startswith(str(root))
        else interpreter
    )
    if not inside.exists():
        inside.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(interpreter, inside)


def test_units_pass_systemd_analyze_verify(installed: dict[str, Any]) -> None:
    root: Path = installed["root"]
    _mirror_ami_for_verify(root)
    units = [
        str(root / "etc/systemd/system" / name)
        for name in ("optfleet-agent.service", "optfleet-agent-logs.service")
    ]
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", *units],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    problems = [line for line in result.stderr.splitlines() if "optfleet" in line]
    assert problems == []


def test_workload_runs_in_its_own_venv(installed: dict[str, Any]) -> None:
    root: Path = installed["root"]
    workdir = root / "opt/optfleet/workload"
    assert (workdir / "evaluate.py").is_file()
    wrapper = root / "opt/optfleet/bin/in-workload-env"
    venv_bin = root / "opt/optfleet/workload-venv/bin"
    assert (venv_bin / "python").exists()
    # The wrapper names paths as seen on the instance; inside the test root, run the venv directly.
    assert "/opt/optfleet/workload-venv/bin:$PATH" in wrapper.read_text()
    result = subprocess.run(
        [str(venv_bin / "python"), "evaluate.py"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "example.com"


def test_wheelhouse_holds_only_wheels_installable_on_the_workers_python() -> None:
    wheelhouse = build_wheelhouse()
    names = sorted(w.name.split("-")[0].lower() for w in wheelhouse.glob("*.whl"))
    for required in (
        "optfleet",
        "requests",
        "urllib3",
        "idna",
        "certifi",
        "charset_normalizer",
        "boto3",
        "botocore",
    ):
        assert required in names
    assert wheel_problems_for_python(wheelhouse, "3.11") == []


def test_wheel_check_rejects_binary_wheels_and_newer_pythons(tmp_path: Path) -> None:
    def fake_wheel(filename: str, requires_python: str) -> None:
        name, version = filename.split("-")[:2]
        with zipfile.ZipFile(tmp_path / filename, "w") as out:
            out.writestr(
                f"{name}-{version}.dist-info/METADATA",
                f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                f"Requires-Python: {requires_python}\n",
            )

    fake_wheel("fast-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", ">=3.8")
    fake_wheel("modern-2.0-py3-none-any.whl", ">=3.10")
    fake_wheel("fine-1.0-py3-none-any.whl", ">=3.8")
    problems = wheel_problems_for_python(tmp_path, "3.9")
    assert len(problems) == 2
    assert problems[0].startswith("fast-1.0-cp311") and "not a pure-python" in problems[0]
    assert problems[1].startswith("modern-2.0") and "excludes 3.9" in problems[1]
