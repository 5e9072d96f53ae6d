"""The notebooks' Colab set-up follows pyproject.toml, the ONE place for the repository URL and the version.

Each notebook opens with an "Open in Colab" badge and a set-up cell that, in Colab only, pip-installs the release
``v<version>`` of ``[project.urls] Repository``: a regular (not editable) install, importable in the running kernel
without a restart. This script writes both from pyproject.toml; the test suite checks them with the same functions.

    python tools/release.py          # rewrite every notebook's badge and set-up cell from pyproject.toml
    python tools/release.py --check  # list the notebooks that disagree (exit status 1 if any)
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
BADGE = re.compile(r"\(https://colab\.research\.google\.com/github/[^)]*\)")


def project() -> tuple[str, str]:
    """(repository URL, release tag) from pyproject.toml: ``[project.urls] Repository`` and ``v<version>``."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return meta["urls"]["Repository"].rstrip("/"), f"v{meta['version']}"


def colab_cell(url: str, tag: str) -> str:
    """The first code cell of every notebook."""
    return (
        f"# Colab only (nothing happens elsewhere): install minibert4rec {tag}, the release of this notebook, and\n"
        "# work in /content/minibert4rec/notebooks so that ../data and ../runs are beside it.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install -q "minibert4rec @ git+{url}@{tag}"\n'
        "    import importlib\n"
        "\n"
        "    importlib.invalidate_caches()  # a regular (not editable) install: importable now, no restart needed\n"
        "    %mkdir -p /content/minibert4rec/notebooks\n"
        "    %cd /content/minibert4rec/notebooks"
    )


def badge_target(url: str, tag: str, notebook: Path) -> str:
    """Where the badge opens the notebook: the copy of the same release."""
    github = url.removeprefix("https://github.com/")
    return f"(https://colab.research.google.com/github/{github}/blob/{tag}/notebooks/{notebook.name})"


def problems(notebook: Path) -> list[str]:
    """What in ``notebook`` disagrees with pyproject.toml (empty: all good)."""
    import nbformat

    url, tag = project()
    nb = nbformat.read(notebook, as_version=4)
    found = []
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    if first_code.source != colab_cell(url, tag):
        found.append(f"{notebook.name}: the first code cell is not tools/release.py's Colab cell for {url}@{tag}")
    badges = [m.group(0) for c in nb.cells if c.cell_type == "markdown" for m in BADGE.finditer(c.source)]
    if badges != [badge_target(url, tag, notebook)]:
        found.append(f"{notebook.name}: Colab badge(s) {badges} should be the one {badge_target(url, tag, notebook)}")
    return found


def write(notebook: Path) -> None:
    """Rewrite the badge and the set-up cell; every other cell, output and metadata is kept."""
    import nbformat

    url, tag = project()
    nb = nbformat.read(notebook, as_version=4)
    next(c for c in nb.cells if c.cell_type == "code").source = colab_cell(url, tag)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = BADGE.sub(badge_target(url, tag, notebook), cell.source)
    nbformat.write(nb, notebook)


def main(argv: list[str]) -> int:
    if argv[1:] == ["--check"]:
        found = [p for notebook in NOTEBOOKS for p in problems(notebook)]
        print("\n".join(found) or f"all {len(NOTEBOOKS)} notebooks follow pyproject.toml: {' @ '.join(project())}")
        return 1 if found else 0
    for notebook in NOTEBOOKS:
        write(notebook)
    print(f"wrote the Colab badge and set-up cell of {len(NOTEBOOKS)} notebooks for {' @ '.join(project())}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
