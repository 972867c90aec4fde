#!/usr/bin/env python3
"""CDK app entry point (cdk.json runs it): an experiment's fleet, or the control plane.

    npx cdk synth -c experiment_id=42 [-c config=fleet.toml] [-c key=value ...]   # optfleet-42
    npx cdk deploy optfleet-control [-c size=ha] [-c key=value ...]            # control plane

With `experiment_id` (or a `config` file) the app holds that experiment's fleet stack; without,
it holds the control-plane stack `optfleet-control`.

Settings are validated before anything is built; a bad one stops synth with one line on stderr
naming the setting.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

if __package__ in (None, ""):  # run as a script by the CDK CLI: make `infra` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infra.settings import SettingsError, load_settings
from infra.wheelhouse import WheelhouseError, WheelhousePaths


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "false").lower() in ("1", "true", "yes")


def wants_fleet(context: Mapping[str, Any]) -> bool:
    """A fleet is asked for by `experiment_id` or a settings file; otherwise the control plane."""
    return any(str(context.get(key) or "").strip() for key in ("experiment_id", "config"))


def build_app(
    *,
    context: Optional[Mapping[str, Any]] = None,
    cwd: Optional[Path] = None,
    outdir: Optional[str] = None,
    wheelhouse_paths: Optional[WheelhousePaths] = None,
) -> Any:
    """Return a `cdk.App` holding the fleet (or control-plane) stack, with cdk-nag registered.

    ``context`` adds to what the CDK CLI passes (tests use it); raises SettingsError or
    WheelhouseError on bad input.
    """
    import aws_cdk as cdk
    from cdk_nag import AwsSolutionsChecks

    from infra.fleet_stack import ExperimentFleetStack

    app = cdk.App(
        context=dict(context or {}),
        outdir=outdir,
        # cfn-lint checks the templates in the tests; the built-in check adds 5-10 s per synth.
        builtin_cloud_formation_validation=_env_flag("CDK_VALIDATION"),
        # Creation stack traces point into jsii's bundle, not at our code: noise and time.
        stack_traces=_env_flag("CDK_DEBUG"),
    )
    all_context = app.node.get_all_context()
    if wants_fleet(all_context):
        settings = load_settings(all_context, cwd=cwd or Path.cwd())
        ExperimentFleetStack(app, settings=settings, wheelhouse_paths=wheelhouse_paths)
    else:
        from infra.control_settings import load_control_settings
        from infra.control_stack import ControlPlaneStack

        ControlPlaneStack(
            app,
            settings=load_control_settings(all_context),
            wheelhouse_paths=wheelhouse_paths,
        )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks())
    return app


def main() -> int:
    """Synthesize the app; print one line and exit 2 on a bad setting."""
    try:
        app = build_app()
    except SettingsError as exc:
        print(f"optfleet: {exc}", file=sys.stderr)
        return 2
    except WheelhouseError as exc:
        print(f"optfleet: wheelhouse: {exc}", file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
