"""Helpers for the infra tests: synth in-process, run the CDK CLI, flatten CloudFormation."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
CDK_CLI = REPO / "node_modules" / ".bin" / "cdk"


def tool_env(extra: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """Environment for the CDK CLI and jsii: the venv's Node 24 first, validation off."""
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "CDK_VALIDATION": "false",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_VERSION_CHECK": "true",
        "CI": "true",
    }
    env.update(extra or {})
    return env


@dataclass
class Synthesized:
    """One synthesized fleet stack: its template dict and the cloud assembly folder."""

    template: dict[str, Any]
    outdir: Path

    def resources(self, type_name: str) -> dict[str, dict[str, Any]]:
        """Resources of one CloudFormation type, by logical id."""
        return {k: v for k, v in self.template["Resources"].items() if v["Type"] == type_name}

    def one(self, type_name: str) -> dict[str, Any]:
        """The single resource of a type (fails when there are zero or several)."""
        found = list(self.resources(type_name).values())
        assert len(found) == 1, f"expected one {type_name}, found {len(found)}"
        return found[0]


def synth(context: Mapping[str, Any], outdir: Path, cwd: Optional[Path] = None) -> Synthesized:
    """Synthesize the app in-process (cdk-nag included) and return the fleet stack's template."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from infra.app import build_app

    app = build_app(context=context, outdir=str(outdir), cwd=cwd or REPO)
    assembly = app.synth()
    stack_name = f"optfleet-{context['experiment_id']}"
    return Synthesized(template=assembly.get_stack_by_name(stack_name).template, outdir=outdir)


def run_cdk(
    args: list[str], *, cwd: Path, env: Mapping[str, str], timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the pinned CDK CLI; the result carries stdout/stderr for assertion messages."""
    return subprocess.run(
        [str(CDK_CLI), *args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def flatten(value: Any) -> str:
    """Render Fn::Join/Fn::Sub/Ref/Fn::Base64 as text with <placeholders> for references."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(flatten(v) for v in value)
    if isinstance(value, dict) and len(value) == 1:
        ((key, inner),) = value.items()
        if key == "Fn::Join":
            separator, parts = inner
            return separator.join(flatten(p) for p in parts)
        if key == "Fn::Base64":
            return flatten(inner)
        if key == "Fn::Sub":
            return inner if isinstance(inner, str) else inner[0]
        if key == "Ref":
            return f"<{inner}>"
        if key == "Fn::GetAtt":
            return f"<{'.'.join(inner)}>"
    return json.dumps(value)
