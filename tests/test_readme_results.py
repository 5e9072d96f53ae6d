"""The README's results table is traced: every number in it is in the result file that it links to.

The table is the one under the heading ``## Results`` of README.md. In each row:

* a number inside a link, ``[0.4927](benchmarks/results/reproduce_ml1m_cpu_paper.json)``, must be in that file;
* any other number of the row must be in one of the files the row links to.

"In a JSON file" means: among its numeric values (all of them, at any depth), one that rounds to the README's
number at the README's number of decimals (0.4927 matches 0.49269365...). A number written with the unit "min"
may also be a number of seconds in the file, divided by 60 (40.7 min matches 2439.8 s). A linked Markdown file
or notebook (.ipynb: the text of its outputs) must contain the number, as written or rounded from a number
in its text; pictures (.png) are not searched. Numbers that belong to a name are not numbers
here: HR@10, ML-1m, ml-100k, notebook 05.

The second part keeps the documentation about the project, not about how the work on it was organised.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS_HEADING = "## Results"
MAX_README_LINES = 220

LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(([^)\s]+)\)")
IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)|<img[^>]*>")
COMMENT = re.compile(r"<!--.*?-->", re.S)
# a number that stands alone: not part of a word (ML-1m, HR@10, v2), not a version (2.13.0), not a path
NOTEBOOK_NAME = re.compile(r"\bnotebooks?\s+\d+(?:\s*-\s*\d+)?", re.I)
NUMBER = re.compile(r"(?<![\w@./])(?<![A-Za-z]-)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w@/]|\.\d)(\s*min\b)?")


def numbers(text: str) -> list[tuple[str, float, int, bool]]:
    """(as written, value, decimals, is_minutes) for every standalone number in ``text``."""
    found = []
    text = NOTEBOOK_NAME.sub("notebook", text)  # "notebook 05" names a notebook
    for m in NUMBER.finditer(text):
        whole, frac, minutes = m.group(1), m.group(2) or "", m.group(3)
        written = whole + frac
        found.append((written, float(whole.replace(",", "") + frac), len(frac) - 1 if frac else 0, bool(minutes)))
    return found


def flatten(value) -> list[float]:
    """Every numeric value of a parsed JSON document, at any depth (booleans are not numbers)."""
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in flatten(v)]
    if isinstance(value, list):
        return [x for v in value for x in flatten(v)]
    return []


def matches(number: tuple[str, float, int, bool], values: list[float]) -> bool:
    """The README's number is one of ``values`` rounded to its decimals (or, for minutes, one of values / 60)."""
    _, x, decimals, minutes = number
    half = 0.5 * 10.0 ** -decimals + 1e-9
    candidates = values + ([v / 60.0 for v in values] if minutes else [])
    return any(abs(v - x) <= half for v in candidates)


class Source:
    """One linked result file: its numbers (JSON) or its text (Markdown); a picture has neither."""

    def __init__(self, target: str):
        self.target = target.split("#")[0]
        self.path = ROOT / self.target
        self.values: list[float] = []
        self.text: str | None = None
        self.searchable = False
        if self.path.suffix == ".json":
            self.values = flatten(json.loads(self.path.read_text()))
            self.searchable = True
        elif self.path.suffix == ".md":
            self.text = self.path.read_text()
            self.searchable = True
        elif self.path.suffix == ".ipynb":  # what the notebook printed: the text of its cells' outputs
            self.text = notebook_output_text(self.path)
            self.searchable = True
        if self.text is not None:
            self.values = [float(t.replace(",", "")) for t in TEXT_NUMBER.findall(self.text)]

    def contains(self, number) -> bool:
        if self.text is not None and (number[0] in self.text or number[0].replace(",", "") in self.text):
            return True
        return matches(number, self.values)


TEXT_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")


def notebook_output_text(path: Path) -> str:
    """Everything a notebook's code cells printed or displayed as text."""
    parts = []
    for cell in json.loads(path.read_text()).get("cells", []):
        for output in cell.get("outputs", []):
            parts.append("".join(output.get("text", [])))
            for kind in ("text/plain", "text/markdown", "text/html"):
                parts.append("".join(output.get("data", {}).get(kind, [])))
    return "\n".join(parts)


def results_rows(text: str) -> list[str]:
    """The body rows of the first table under the results heading (header and separator dropped)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == RESULTS_HEADING)
    rows, in_table = [], False
    for line in lines[start + 1:]:
        if line.startswith("#"):
            break
        if line.lstrip().startswith("|"):
            in_table = True
            rows.append(line)
        elif in_table and not line.strip().startswith("<!--"):
            break
    body = rows[2:]  # header, |---|
    return body


def problems_in_row(row: str) -> list[str]:
    """What in one table row is not traced to its files (an empty list: all of it is)."""
    row = IMAGE.sub("", COMMENT.sub("", row))
    links = LINK.findall(row)
    sources = {target: Source(target) for _, target in links}
    missing = [t for t, s in sources.items() if not s.path.exists()]
    if missing:
        return [f"links to missing file(s) {missing}"]
    searchable = [s for s in sources.values() if s.searchable]
    if not searchable:
        return ["links to no result file (.json, .md or .ipynb)"]
    problems = []
    for label, target in links:
        source = sources[target]
        if not source.searchable:
            continue
        for number in numbers(label):
            if not source.contains(number):
                problems.append(f"{number[0]} is not in {source.target}")
    outside = LINK.sub(" ", row)
    for number in numbers(outside):
        if not any(s.contains(number) for s in searchable):
            problems.append(f"{number[0]} is in none of {[s.target for s in searchable]}")
    return problems


README_TEXT = README.read_text()
ROWS = results_rows(README_TEXT)


def test_the_results_table_is_there():
    assert RESULTS_HEADING in README_TEXT.splitlines(), f"README.md needs the heading {RESULTS_HEADING!r}"
    assert 1 <= len(ROWS) <= 8, f"the results summary has {len(ROWS)} rows; at most 8"


@pytest.mark.parametrize("row", ROWS, ids=[f"row{i + 1}" for i in range(len(ROWS))])
def test_every_number_of_a_results_row_is_in_its_file(row):
    problems = problems_in_row(row)
    assert not problems, f"README results row {row[:80]!r}...: " + "; ".join(problems)


def test_the_checker_rejects_a_number_that_is_not_in_the_file():
    """The check above can fail: the same row with one number changed is caught, and so is a row without a file."""
    good = ("| ML-1m | HR@10 [0.7076](benchmarks/results/reproduce_ml1m_cpu_paper.json), paper 0.6970, "
            "after 40.7 min |")
    assert problems_in_row(good) == []
    assert problems_in_row(good.replace("0.7076", "0.7176"))
    assert problems_in_row(good.replace("40.7 min", "41.7 min"))
    assert problems_in_row("| no file | 0.5 |")
    assert numbers("HR@10 on ML-1m, ml-100k, torch 2.13.0, notebook 05") == []
    assert [n[0] for n in numbers("0.3095-0.3160, 1,024 users, 56.2 min")] == ["0.3095", "0.3160", "1,024", "56.2"]


def test_a_row_may_link_a_notebook_that_printed_its_numbers(tmp_path):
    """A notebook row (the lesson's own run) is checked against what the notebook printed."""
    notebook = tmp_path / "05.ipynb"
    notebook.write_text(json.dumps({"cells": [{"cell_type": "code", "source": [], "outputs": [
        {"output_type": "stream", "name": "stdout", "text": ["test sampled NDCG@10 0.43412, 17 epochs in 12.7 min\n"]}]}]}))
    row = f"| notebook 05 | NDCG@10 [0.434]({notebook}), [17]({notebook}) epochs in [12.7 min]({notebook}) |"
    assert problems_in_row(row) == []
    assert problems_in_row(row.replace("0.434", "0.443"))


def test_readme_is_short():
    lines = len(README_TEXT.splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; keep it at most {MAX_README_LINES}"


# Words that describe how the work was organised, not the project: never in the documentation.
FORBIDDEN = re.compile(r"\bsessions?\b|\bissues?\s*#|\bissues?\s+\d|\blease\b|\blast\s+time\b", re.I)
DOCS = [README, ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_documentation_speaks_about_the_project_only(path):
    if not path.exists():
        pytest.skip(f"{path.relative_to(ROOT)} does not exist")
    hits = [f"line {n}: {m.group(0)!r}" for n, line in enumerate(path.read_text().splitlines(), 1)
            for m in FORBIDDEN.finditer(line)]
    assert not hits, f"{path.relative_to(ROOT)}: " + ", ".join(hits)


# The README's notebook table: "| 05 | [training on a GPU](notebooks/05_....ipynb) | ... | 51.9 min / not measured |"
NOTEBOOK_ROW = re.compile(r"^\|\s*(\d\d)\s*\|\s*\[[^\]]*\]\((notebooks/[^)]+\.ipynb)\).*\|\s*([\d.]+) min\s*/[^|]*\|\s*$")
STAMP = re.compile(r"Run on (?:a |an )?.*?, (\d+) torch threads?, in ([\d.]+) minutes")


def notebook_time_rows(text: str) -> list[tuple[str, str, str]]:
    """(number, path, minutes as written) for each row of the README's notebook table."""
    return [m.groups() for line in text.splitlines() if (m := NOTEBOOK_ROW.match(line.strip()))]


def stamp_of(path: Path) -> tuple[int, str] | None:
    """(torch threads, minutes) from the stamp that a notebook's last cell printed, or None."""
    found = STAMP.findall(notebook_output_text(path))
    return (int(found[-1][0]), found[-1][1]) if found else None


def test_the_notebook_table_times_are_those_the_notebooks_printed():
    rows = notebook_time_rows(README_TEXT)
    assert [number for number, _, _ in rows] == [f"{i:02d}" for i in range(1, 9)], "one row per notebook, 01-08"
    wrong = []
    for number, path, minutes in rows:
        stamp = stamp_of(ROOT / path)
        if stamp is None or stamp[1] != minutes:
            wrong.append(f"{number}: the README says {minutes} min, the notebook printed {stamp and stamp[1]}")
    assert not wrong, "update the README's notebook table: " + "; ".join(wrong)


def test_the_notebook_time_check_sees_a_wrong_time(tmp_path):
    row = "| 05 | [training](notebooks/05_training_on_a_gpu.ipynb) | loop | [`train.py`](x) | 99.9 min / not measured |"
    (number, path, minutes), = notebook_time_rows(row)
    assert (number, minutes) == ("05", "99.9") and stamp_of(ROOT / path)[1] != minutes


def test_the_notebook_table_names_the_threads_the_notebooks_used():
    """The sentence above the notebook table names the torch threads; every timed notebook ran with that many."""
    said = re.search(r"printed by each notebook's last cell \(an? [^,]+, (\d+) threads?\)", README_TEXT)
    assert said, "the sentence above the notebook table names the CPU and the torch threads"
    used = {number: stamp_of(ROOT / path) for number, path, _ in notebook_time_rows(README_TEXT)}
    other = {number: stamp[0] for number, stamp in used.items() if stamp and stamp[0] != int(said.group(1))}
    assert not other, f"the README says {said.group(1)} threads; these notebooks ran with others: {other}"
