"""The install files agree with each other, and the notebooks' Colab cell installs a package that imports."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r): r.replace(" ", "") for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {_name(r): r.replace(" ", "") for r in pip_section if not r.startswith("-e")}
    assert listed == wanted, "environment.yml and pyproject.toml disagree; copy the requirement lines across"
    assert "-e ." in pip_section
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.replace("python", "") == project["requires-python"]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line.strip() for line in ci.splitlines() if "pytest" in line and not line.startswith("#"))
    assert command in readme, f"the README must show the test command CI runs: {command}"
    assert ci.index("torch==") < ci.index('-e ".[dev]"'), "CI must install CPU torch before the package"


def test_data_downloads_are_not_committed():
    ignore = (ROOT / "data" / ".gitignore").read_text()
    assert "*" in ignore


# ------------------------------------------------------------------------------------------------ Colab
def _release_tool():
    spec = importlib.util.spec_from_file_location("release", ROOT / "tools" / "release.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_notebook_installs_the_release_named_in_pyproject():
    """Badge and set-up cell of each notebook = tools/release.py's, for [project.urls] Repository and v<version>."""
    release = _release_tool()
    url, tag = release.project()
    assert url.startswith("https://github.com/") and tag == "v" + tomllib.loads(
        (ROOT / "pyproject.toml").read_text())["project"]["version"]
    problems = [p for notebook in release.NOTEBOOKS for p in release.problems(notebook)]
    assert not problems, "\n".join(problems) + "\nrun: python tools/release.py"
    cell = release.colab_cell(url, tag)
    assert f'%pip install -q "minibert4rec @ git+{url}@{tag}"' in cell and " -e " not in cell
    from IPython.core.inputtransformer2 import TransformerManager

    compile(TransformerManager().transform_cell(cell), "colab_cell", "exec")  # valid IPython
    exec(compile(TransformerManager().transform_cell(cell), "colab_cell", "exec"), {})  # outside Colab: no-op


KERNEL = r'''
import importlib, subprocess, sys
# A fresh runtime: the developer's editable install (a meta-path finder or a path entry) is not there.
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
sys.path[:] = [p for p in sys.path if not p.startswith(sys.argv[1])]
try:
    import minibert4rec
    sys.exit(f"minibert4rec was importable before the install: {minibert4rec.__file__}")
except ModuleNotFoundError:
    pass
# what %pip does: pip in a subprocess of the kernel, into the kernel's environment (offline: no index, no deps)
subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                sys.argv[2]], check=True)
importlib.invalidate_caches()
import minibert4rec
from minibert4rec.support.runtime import run_sizes
assert minibert4rec.__file__.startswith(sys.prefix), minibert4rec.__file__
print(minibert4rec.__version__, minibert4rec.__file__)
'''


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout")
def test_the_colab_cell_installs_a_package_importable_in_the_same_process(tmp_path):
    """The cell's mechanics, offline: the same pip requirement (git+URL@tag) with the URL pointing at a local clone,
    into a fresh virtual environment, then import in the process that ran pip (as a Colab kernel does)."""
    release = _release_tool()
    url, tag = release.project()
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "tag", tag], check=True)  # the tag a release would have
    line = next(l for l in release.colab_cell(url, tag).splitlines() if "%pip install" in l)
    local = "file://localhost" + clone.as_posix()  # (pip's requirement parser wants a host in a file: URL)
    requirement = line.split('"')[1].replace(url, local)
    assert requirement == f"minibert4rec @ git+{local}@{tag}"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([str(python), "-c", KERNEL, str(ROOT), requirement], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    version, path = done.stdout.split()[-2:]
    assert version == tag[1:] and path.startswith(str(venv))
