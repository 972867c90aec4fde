"""Static security checks: ruff's S (bandit) rules pass, and every exception says why.

ruff's configuration (pyproject.toml) selects the S rules for the whole repository; this test runs
them on their own so a security finding is named as such, and audits every ``# noqa`` that
silences an S rule: it must carry a justification after the codes (``# noqa: S603 - our own
agent executable``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).with_name("ruff")
SKIP_DIRS = {".venv", "node_modules", "cdk.out", "build", ".git", ".stamps", "__pycache__"}
NOQA = re.compile(r"#\s*noqa:\s*(?P<codes>[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*)(?P<why>.*)$")


def python_files() -> list[Path]:
    return [
        path
        for path in REPO.rglob("*.py")
        if not SKIP_DIRS.intersection(path.relative_to(REPO).parts)
    ]


def unjustified_security_noqas() -> list[str]:
    """``path:line: codes`` for each ``# noqa`` silencing an S rule without saying why."""
    found = []
    for path in python_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            match = NOQA.search(line)
            if not match or not re.search(r"\bS[0-9]+", match["codes"]):
                continue
            why = match["why"].strip(" -:()#")
            if len(re.findall(r"[A-Za-z]{2,}", why)) < 2:
                found.append(f"{path.relative_to(REPO)}:{number}: {match['codes']}")
    return found


def test_ruff_security_rules_pass() -> None:
    result = subprocess.run(
        [str(RUFF), "check", "--select", "S", "--output-format", "concise", "."],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_security_exception_is_justified() -> None:
    unjustified = unjustified_security_noqas()
    assert unjustified == [], "add a reason after the codes:\n" + "\n".join(unjustified)


def test_the_audit_recognises_an_unjustified_exception(tmp_path: Path) -> None:
    # The regex must catch the bare form and accept the justified one.
    assert NOQA.search("x = 1  # noqa: S105")["why"].strip() == ""  # type: ignore[index]
    justified = NOQA.search("Popen(cmd)  # noqa: S603 - our own agent executable")
    assert justified is not None and "agent" in justified["why"]
