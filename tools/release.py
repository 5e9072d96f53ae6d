"""The notebooks' Colab set-up follows pyproject.toml, the ONE place for the repository URL and the version.

Each notebook opens with an "Open in Colab" badge and a set-up cell that, in Colab only, pip-installs the package
from ``[project.urls] Repository`` at one git ref: a regular (not editable) install, importable in the running
kernel without a restart. The cell stops with a one-line error when pip fails, so "Run all" does not go on
without the package. This script writes both; the test suite checks them with the same functions.

Until a release is tagged, the ref is the branch ``main`` (the default); ``--release`` pins the notebooks to the
tag ``v<version>`` of pyproject.toml, which must then be pushed with the commit that contains them.

    python tools/release.py                  # badges and set-up cells install and open `main`
    python tools/release.py --release        # ... the tag v<version> (when cutting a release)
    python tools/release.py --ref REF        # ... any branch, tag or commit
    python tools/release.py --check [--release | --ref REF]   # list the notebooks that disagree (exit status 1)
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
BADGE = re.compile(r"\(https://colab\.research\.google\.com/github/[^)]*\)")
DEFAULT_REF = "main"  # no release is tagged yet: the notebooks install and open the main branch


def project() -> tuple[str, str]:
    """(repository URL, release tag) from pyproject.toml: ``[project.urls] Repository`` and ``v<version>``."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return meta["urls"]["Repository"].rstrip("/"), f"v{meta['version']}"


def colab_cell(url: str, ref: str) -> str:
    """The first code cell of every notebook: plain Python, so that a failed install raises (``%pip`` does not)."""
    requirement = f"minibert4rec @ git+{url}@{ref}"
    return (
        f"# Colab only (nothing happens elsewhere): install minibert4rec ({ref} of its repository) and\n"
        "# work in /content/minibert4rec/notebooks so that ../data and ../runs are beside it.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        "    import importlib, os, subprocess\n"
        "\n"
        f'    _pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "{requirement}"])\n'
        "    if _pip.returncode != 0:  # stop here: without the package every later cell fails\n"
        f'        raise SystemExit(f"pip could not install {requirement} (exit status {{_pip.returncode}}, its '
        'messages are above); check that the runtime is online and run this cell again.")\n'
        "    importlib.invalidate_caches()  # a regular (not editable) install: importable now, no restart needed\n"
        '    os.makedirs("/content/minibert4rec/notebooks", exist_ok=True)\n'
        '    os.chdir("/content/minibert4rec/notebooks")'
    )


def badge_target(url: str, ref: str, notebook: Path) -> str:
    """Where the badge opens the notebook: its copy at the same ref as the set-up cell installs."""
    github = url.removeprefix("https://github.com/")
    return f"(https://colab.research.google.com/github/{github}/blob/{ref}/notebooks/{notebook.name})"


def expected(notebook: Path, ref: str = DEFAULT_REF):
    """The notebook as this script writes it for ``ref``: the badge and the set-up cell replaced, every other
    cell, output and metadata as they are."""
    import nbformat

    url, _ = project()
    nb = nbformat.read(notebook, as_version=4)
    next(c for c in nb.cells if c.cell_type == "code").source = colab_cell(url, ref)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = BADGE.sub(badge_target(url, ref, notebook), cell.source)
    return nb


def problems(notebook: Path, ref: str = DEFAULT_REF) -> list[str]:
    """What in ``notebook`` differs from this script's output for ``ref`` (empty: all good)."""
    import nbformat

    url, _ = project()
    nb = nbformat.read(notebook, as_version=4)
    found = []
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    if first_code.source != colab_cell(url, ref):
        found.append(f"{notebook.name}: the first code cell is not tools/release.py's Colab cell for {url}@{ref}")
    badges = [m.group(0) for c in nb.cells if c.cell_type == "markdown" for m in BADGE.finditer(c.source)]
    if badges != [badge_target(url, ref, notebook)]:
        found.append(f"{notebook.name}: Colab badge(s) {badges} should be the one {badge_target(url, ref, notebook)}")
    if not found and nbformat.writes(expected(notebook, ref)) != nbformat.writes(nb):
        found.append(f"{notebook.name}: differs from tools/release.py's output for {ref}")
    return found


def write(notebook: Path, ref: str = DEFAULT_REF) -> None:
    """Rewrite the badge and the set-up cell; every other cell, output and metadata is kept."""
    import nbformat

    nbformat.write(expected(notebook, ref), notebook)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python tools/release.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--ref", default=DEFAULT_REF, help=f"git branch, tag or commit (default: {DEFAULT_REF})")
    which.add_argument("--release", action="store_true", help="the tag v<version> of pyproject.toml")
    parser.add_argument("--check", action="store_true", help="change nothing; list the notebooks that disagree")
    args = parser.parse_args(argv[1:])
    url, tag = project()
    ref = tag if args.release else args.ref
    if args.check:
        found = [p for notebook in NOTEBOOKS for p in problems(notebook, ref)]
        print("\n".join(found) + f"\nfix: python tools/release.py{' --release' if args.release else ''}" if found
              else f"all {len(NOTEBOOKS)} notebooks install and open {url} @ {ref}")
        return 1 if found else 0
    for notebook in NOTEBOOKS:
        write(notebook, ref)
    print(f"wrote the Colab badge and set-up cell of {len(NOTEBOOKS)} notebooks for {url} @ {ref}")
    if args.release:
        print(f"now commit, then: git tag {tag} && git push origin {tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
