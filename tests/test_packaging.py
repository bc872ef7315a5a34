"""The packaging promises: environment.yml matches pyproject.toml, torch is pinned, the layout exists."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# PyPI name -> conda-forge name, where they differ; "dask[distributed]" is two conda packages.
CONDA_NAMES = {"torch": "pytorch", "psycopg2-binary": "psycopg2"}


def _split(spec: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$", spec)
    assert m, spec
    return m.group(1).lower(), m.group(3).replace(" ", "")


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in ("notebook", "hub", "ml"):
        specs += project["optional-dependencies"][extra]
    out: dict[str, str] = {}
    for spec in specs:
        name, version = _split(spec)
        if spec.startswith("dask[distributed]"):
            out["distributed"] = version
        out[CONDA_NAMES.get(name, name)] = version
    return out


def _environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out: dict[str, str] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            name, version = _split(dep.replace("=", "==", 1) if re.match(r"^[\w\-]+=[^=]", dep) else dep)
            out[name] = version
    return out


def test_environment_yml_matches_pyproject():
    wanted = _pyproject_requirements()
    have = _environment_requirements()
    missing = sorted(set(wanted) - set(have))
    assert not missing, f"environment.yml lacks {missing}"
    differ = {n: (wanted[n], have[n]) for n in wanted if wanted[n] != have[n]}
    assert not differ, f"version bounds differ (pyproject, environment.yml): {differ}"
    # configurable-http-proxy is an npm package (hub/package.json), not a Python dependency
    extra = sorted(set(have) - set(wanted) - {"python", "pip", "configurable-http-proxy"})
    assert not extra, f"environment.yml has packages pyproject.toml does not declare: {extra}"


def test_torch_is_pinned_to_the_cpu_wheel_version():
    constraints = (ROOT / "constraints.txt").read_text()
    assert re.search(r"^torch==2\.13\.0$", constraints, re.M), "constraints.txt must pin torch==2.13.0"
    assert _pyproject_requirements()["pytorch"] == "==2.13.0"
    dev = (ROOT / "dev").read_text()
    assert "-c constraints.txt" in dev, "./dev must install with the constraints file"


def test_design_layout_exists():
    for name in ("hub", "deepepil", "widgets", "notebooks", "tests", "bench", "docs"):
        assert (ROOT / name).is_dir(), name
    for name in ("environment.yml", "jupyterhub_config.py", "pyproject.toml", "README.md", ".ci/run"):
        assert (ROOT / name).is_file(), name


def test_readme_quickstart_has_exactly_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", section, re.S)
    commands = [line.strip() for b in blocks for line in b.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2, commands
    demo, test = commands
    assert "demo" in demo and "test" in test
    ci = (ROOT / ".ci" / "run").read_text()
    assert test in ci, f"CI must call the README's test command {test!r}"


def test_hub_is_installed_from_this_repository_and_widgets_only_inside_deepepil():
    """jupyterhub_config.py and `deepepil admin approve` import the `hub` package; the widget
    sources ship as deepepil/ui/assets, never as a top-level `widgets` package."""
    out = subprocess.run(
        [sys.executable, "-c", "import importlib.util as u, hub; print(list(hub.__path__)[0]); print(u.find_spec('widgets'))"],
        capture_output=True, text=True, cwd="/", check=True,
    )
    hub_path, widgets = out.stdout.split()
    assert Path(hub_path).resolve() == (ROOT / "hub").resolve()
    assert widgets == "None"


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "deepepil.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("deepepil ")


def test_test_modules_have_unique_names():
    """tests/ folders are not packages, so pytest imports test modules by their file name."""
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
