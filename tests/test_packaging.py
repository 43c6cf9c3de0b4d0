"""What a fresh install relies on: the console script, the Dockerfile, the README's commands."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_console_script_points_at_the_cli():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["quotagap"] == "app.cli:main"
    from app.cli import main

    assert callable(main)


def test_cli_lists_the_commands():
    out = subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout
    for command in (
        "serve",
        "migrate",
        "import",
        "demo",
        "create-api-key",
        "compute",
        "sync",
        "sandbox-crm",
    ):
        assert re.search(rf"\b{command}\b", out), command


def test_dockerfile_runs_the_service_entry_point():
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["quotagap"]' in text
    assert 'CMD ["serve"]' in text
    for package in ("app", "analytics", "connectors", "migrations"):
        assert f"COPY {package} ./{package}" in text
    assert "EXPOSE 8000" in text


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = re.search(r"^scripts/test\b", readme, re.MULTILINE)
    assert test_command, "README must show the test command"
    assert "scripts/test" in ci


def test_constraints_pin_every_dependency_within_its_range():
    """constraints.txt (scripts/lock) pins each runtime and test dependency to a version that
    pyproject.toml allows: CI installs with it, so what was tested is known."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    for spec in wanted:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in constraints.txt: run scripts/lock"
        assert req.specifier.contains(pins[name], prereleases=True), (req.name, pins[name])
    assert "quotagap" not in pins  # the project itself is never pinned
