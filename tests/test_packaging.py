"""The install files agree with each other, and the notebooks' Colab cell installs a package that imports."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    """Same packages and pins as pyproject.toml (dependencies + the dev extra), the same Python, and CPU torch."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r): r.replace(" ", "") for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {_name(r): r.replace(" ", "") for r in pip_section if not r.startswith("-")}  # not the pip options
    assert listed == wanted, "environment.yml and pyproject.toml disagree; copy the requirement lines across"
    assert "-e ." in pip_section
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in pip_section, \
        "environment.yml must take torch from PyTorch's CPU wheel index (an extra index: the rest comes from PyPI)"
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.replace("python", "") == project["requires-python"] == ">=3.11", "tomllib needs Python 3.11"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line.strip() for line in ci.splitlines() if "pytest" in line and not line.startswith("#"))
    assert command in readme, f"the README must show the test command CI runs: {command}"
    assert ci.index("torch==") < ci.index('-e ".[dev]"'), "CI must install CPU torch before the package"
    assert ci.index('rm -rf "$VENV"') < ci.index("-m venv"), "CI must install into a virtual environment made afresh"


def _git(*args: str) -> subprocess.CompletedProcess:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout of the repository")
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


# what `python -m minibert4rec download` writes (datasets, archives, caches), and a file nobody planned for
DATA_FILES = ["data/ml-1m/ratings.dat", "data/ml-1m/movies.dat", "data/ml-1m.zip", "data/ml-1m/sequences_by_time.txt",
              "data/ml-100k/u.data", "data/ml-100k/ml-100k.inter", "data/ml-100k.zip", "data/ml-20m/ratings.csv",
              "data/beauty/beauty.txt", "data/new-dataset/anything.parquet"]


@pytest.mark.parametrize("path", DATA_FILES)
def test_data_downloads_are_ignored_by_git(path):
    """MovieLens may not be redistributed: git ignores every downloaded file (--no-index: also a tracked one)."""
    check = _git("check-ignore", "--no-index", "-q", path)
    assert check.returncode == 0, f"git would not ignore {path}: data/.gitignore must ignore everything under data/"


def test_no_data_file_is_tracked_and_the_ignore_file_is():
    tracked = _git("ls-files", "data").stdout.split()
    assert tracked == ["data/.gitignore"], f"files under data/ are committed: {tracked}; git rm --cached them"
    kept = _git("check-ignore", "--no-index", "-q", "data/.gitignore")
    assert kept.returncode == 1, "data/.gitignore must not ignore itself (the !.gitignore line)"


# ------------------------------------------------------------------------------------------------ Colab
def _release_tool():
    spec = importlib.util.spec_from_file_location("release", ROOT / "tools" / "release.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def notebook_release_problems(ref: str | None = None) -> list[str]:
    """How the committed notebooks differ from ``python tools/release.py`` (``--ref`` ref; default: its default,
    the branch main): run after tools/release.py rewrote the notebooks, it must return nothing."""
    release = _release_tool()
    return [p for notebook in release.NOTEBOOKS for p in release.problems(notebook, ref or release.DEFAULT_REF)]


def test_every_notebook_is_as_tools_release_py_writes_it():
    """Badge and set-up cell of each notebook = tools/release.py's output, for [project.urls] Repository at main."""
    problems = notebook_release_problems()
    assert not problems, "\n".join(problems) + "\nrun: python tools/release.py"


def _run_cell(cell: str, returncode: int, monkeypatch) -> list:
    """Run the set-up cell as in Colab, with pip and the file system replaced: what it asked for, in order."""
    calls = []
    monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    monkeypatch.setattr(subprocess, "run", lambda args, **kw: calls.append(("pip", args)) or
                        subprocess.CompletedProcess(args, returncode))
    monkeypatch.setattr(os, "makedirs", lambda path, exist_ok=False: calls.append(("makedirs", path)))
    monkeypatch.setattr(os, "chdir", lambda path: calls.append(("chdir", path)))
    exec(compile(cell, "colab_cell", "exec"), {})
    return calls


def test_the_colab_cell_installs_the_ref_and_stops_when_pip_fails(monkeypatch):
    release = _release_tool()
    url, tag = release.project()
    assert url.startswith("https://github.com/") and release.DEFAULT_REF == "main"
    assert tag == "v" + tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    cell = release.colab_cell(url, "main")
    assert "%" not in cell and " -e " not in cell  # plain Python: a failed install raises, which %pip does not
    exec(compile(cell, "colab_cell", "exec"), {})  # outside Colab: nothing happens
    requirement = f"minibert4rec @ git+{url}@main"
    assert _run_cell(cell, 0, monkeypatch) == [
        ("pip", [sys.executable, "-m", "pip", "install", "-q", requirement]),
        ("makedirs", "/content/minibert4rec/notebooks"), ("chdir", "/content/minibert4rec/notebooks")]
    with pytest.raises(SystemExit) as failed:
        _run_cell(cell, 1, monkeypatch)
    message = str(failed.value.code)
    assert message.startswith(f"pip could not install {requirement} (exit status 1") and "\n" not in message
    assert release.badge_target(url, "main", Path("06_evaluation.ipynb")) == (
        f"(https://colab.research.google.com/github/{url.removeprefix('https://github.com/')}"
        "/blob/main/notebooks/06_evaluation.ipynb)")


def test_release_py_writes_main_until_a_release_and_the_tag_with_release(tmp_path, monkeypatch, capsys):
    """Default: the notebooks install and open main; --release pins them to v<version>; --check agrees."""
    nbformat = pytest.importorskip("nbformat")
    release = _release_tool()
    url, tag = release.project()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 06\n[![Open In Colab](https://colab.research.google.com/assets/"
                                              "colab-badge.svg)(https://colab.research.google.com/github/x/y/blob/"
                                              "v0.0.1/notebooks/06_evaluation.ipynb)"),
                nbformat.v4.new_code_cell("%pip install old"), nbformat.v4.new_code_cell("print(1)")]
    notebook = tmp_path / "06_evaluation.ipynb"
    nbformat.write(nb, notebook)
    monkeypatch.setattr(release, "NOTEBOOKS", [notebook])
    assert release.main(["release.py", "--check"]) == 1
    assert release.main(["release.py"]) == 0 and release.main(["release.py", "--check"]) == 0
    written = nbformat.read(notebook, as_version=4)
    assert written.cells[1].source == release.colab_cell(url, "main") and written.cells[2].source == "print(1)"
    assert "/blob/main/notebooks/06_evaluation.ipynb)" in written.cells[0].source
    assert release.main(["release.py", "--check", "--release"]) == 1
    assert release.main(["release.py", "--release"]) == 0 and not release.problems(notebook, tag)
    assert f"git tag {tag}" in capsys.readouterr().out


KERNEL = r'''
import importlib, io, os, subprocess, sys, urllib.request
# A fresh runtime: the developer's editable install (a meta-path finder or the checkout as a path entry) is not
# there. (Only the checkout itself: an environment inside it, such as CI's .venv-ci, stays.)
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != os.path.realpath(sys.argv[1])]
try:
    import minibert4rec
    sys.exit(f"minibert4rec was importable before the install: {minibert4rec.__file__}")
except ModuleNotFoundError:
    pass
# what the cell does: pip in a subprocess of the kernel, into the kernel's environment (offline: no index, no
# deps; the package is built with this environment's setuptools, not one that pip would fetch)
subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                sys.argv[2]], check=True)
importlib.invalidate_caches()
import minibert4rec
import minibert4rec.exercises as ex
from minibert4rec.support.runtime import run_sizes
assert minibert4rec.__file__.startswith(sys.prefix), minibert4rec.__file__
# solution() in a pip install: no solutions/ folder, so it downloads the file at the installed commit
assert not ex.solution_path("causal_mask").exists(), ex.solution_path("causal_mask")
raw, page = ex.solution_urls("causal_mask")
assert raw.endswith(f"/{sys.argv[3]}/solutions/causal_mask.py") and f"/blob/{sys.argv[3]}/" in page, (raw, page)
urllib.request.urlopen = lambda url, timeout: io.BytesIO(open(sys.argv[4], "rb").read()) if url == raw else 1 / 0
ex.solution("causal_mask")
print(minibert4rec.__version__, minibert4rec.__file__)
'''


def _toolchain_problem() -> str | None:
    """Why this environment cannot build the package without fetching a toolchain, or None."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        major, minor = (int(x) for x in version("setuptools").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return "setuptools is not installed"
    if (major, minor) >= (70, 1):
        return None
    try:
        version("wheel")
    except PackageNotFoundError:
        return f"setuptools {major}.{minor} has no bdist_wheel without the wheel package"
    return None


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout")
@pytest.mark.integration
def test_the_colab_cell_installs_a_package_importable_in_the_same_process(tmp_path):
    """The cell's mechanics, offline: the same pip requirement (git+URL@main) with the URL pointing at a local
    clone, into a fresh virtual environment, then import in the process that ran pip (as a Colab kernel does).

    The virtual environment sees this environment's packages (torch, pip, setuptools, wheel) through a .pth file,
    not the base interpreter's (--system-site-packages would take whatever setuptools the machine's Python has)."""
    problem = _toolchain_problem()
    assert problem is None, f"{problem}: pip install -e \".[dev]\" installs the toolchain (setuptools>=70.1, wheel)"
    release = _release_tool()
    url, ref = release.project()[0], release.DEFAULT_REF
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "update-ref", f"refs/heads/{ref}", "HEAD"], check=True)  # the branch
    commit = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    line = next(l for l in release.colab_cell(url, ref).splitlines() if "pip" in l and "git+" in l)
    local = "file://localhost" + clone.as_posix()  # (pip's requirement parser wants a host in a file: URL)
    requirement = re.search(r'"(minibert4rec @ git\+[^"]+)"', line).group(1).replace(url, local)
    assert requirement == f"minibert4rec @ git+{local}@{ref}"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    outer = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    Path(site, "_outer_environment.pth").write_text("\n".join(outer) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}
    done = subprocess.run([str(python), "-c", KERNEL, str(ROOT), requirement, commit,
                           str(ROOT / "solutions" / "causal_mask.py")],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "def causal_mask(n: int)" in done.stdout  # solution() printed the file's text
    version, path = done.stdout.split()[-2:]
    assert version == release.project()[1][1:] and path.startswith(str(venv))
