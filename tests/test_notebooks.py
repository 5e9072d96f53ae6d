"""The committed notebooks are lessons a reader can follow on GitHub: executed, error-free, ending in exercises."""

import json
import re
import tomllib
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXPECTED = ["01_data", "02_cloze_masking", "03_attention_from_scratch", "04_the_model", "05_training_on_a_gpu",
            "06_evaluation", "07_attention_maps", "08_distributed_training"]


def test_all_eight_notebooks_exist():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_with_outputs_and_no_errors(path):
    cells = json.loads(path.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    unexecuted = [i for i, c in enumerate(code) if c.get("execution_count") is None]
    assert not unexecuted, f"{path.name}: code cells {unexecuted} were never executed; commit an executed notebook"
    errors = [i for i, c in enumerate(code) for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: code cells {errors} have error outputs"
    assert any(c.get("outputs") for c in code), f"{path.name} has no outputs at all"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lesson_shape(path):
    cells = json.loads(path.read_text())["cells"]
    first_md = "".join(cells[0]["source"])
    assert "colab.research.google.com" in first_md, f"{path.name}: the first cell needs the Open-in-Colab badge"
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown").lower()
    assert "recap" in text and "exercise" in text, f"{path.name} must end with a recap and exercises"
    sources = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    for variable in ("MINIBERT4REC_SMOKE", "MINIBERT4REC_DATASET"):
        assert variable not in sources, "notebooks ask minibert4rec.support.config.run_sizes(), not the variable"


# ------------------------------------------------------------------------------------------------ hygiene
# Committed outputs must be current by construction: written from inside the repository, by this package version,
# and every number the prose quotes must come from a cell (printed, or rendered with Markdown(f"...")).
ROOT = Path(__file__).resolve().parents[1]
OUTSIDE_PATH = re.compile(
    r"(?<![\w.~-])(/(?:work|tmp|home|Users|root|mnt|opt|usr|var|private|content)/)"  # a POSIX absolute path
    r"|\b[A-Za-z]:\\"  # a Windows drive
    r"|\bwt-\d+\b")  # a git worktree of another checkout
TEXT_MIMETYPES = ("text/plain", "text/markdown", "text/html", "text/latex", "application/json")


def _version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _output_texts(cell: dict) -> list[str]:
    """Every text a code cell showed: streams, results, displays and tracebacks (not images)."""
    texts = []
    for out in cell.get("outputs", []):
        if "text" in out:
            texts.append("".join(out["text"]) if isinstance(out["text"], list) else out["text"])
        for mimetype, value in out.get("data", {}).items():
            if mimetype in TEXT_MIMETYPES:
                texts.append(value if isinstance(value, str) else json.dumps(value) if isinstance(value, dict)
                             else "".join(value))
        texts.extend(out.get("traceback", []))
    return texts


def outside_paths(text: str) -> list[str]:
    """Pieces of ``text`` that name a place outside the repository (a line around each)."""
    return [text[max(0, m.start() - 40): m.end() + 40].replace("\n", " ") for m in OUTSIDE_PATH.finditer(text)]


@pytest.mark.parametrize("text, bad", [
    ("training -> /work/wt-16/runs/notebook08/one_process", True), ("saved /tmp/tmpab12/x.pt", True),
    ("/home/me/data", True), ("/Users/me/data", True), ("C:\\Users\\me", True), ("from wt-3", True),
    ("/content/minibert4rec", True), ("training -> runs/notebook08/one_process", False),
    ("../data/ml-1m/ratings.dat", False), ("lr 1e-3, 31 steps/epoch, 0.5 s/step", False)])
def test_the_outside_path_pattern(text, bad):
    assert bool(outside_paths(text)) == bad


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_name_no_path_outside_the_repository(path):
    """Print paths relative to the repository: an absolute path is another machine's, or a worktree's."""
    cells = json.loads(path.read_text())["cells"]
    found = [f"cell {i}: ...{piece}..." for i, c in enumerate(cells) if c["cell_type"] == "code"
             for text in _output_texts(c) for piece in outside_paths(text)]
    assert not found, f"{path.name} shows paths outside the repository:\n" + "\n".join(found[:10])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_last_code_cell_stamps_this_package_version(path):
    """The last code cell prints notebook_stamp (device, time, version, commit); its version is pyproject's, so a
    notebook executed by an older package (outputs of old code) fails until it is executed again."""
    code = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    last = code[-1]
    assert "notebook_stamp(" in "".join(last["source"]), f"{path.name}: the last code cell must print notebook_stamp"
    shown = "\n".join(_output_texts(last))
    versions = re.findall(r"minibert4rec (\S+?) \(commit", shown)
    assert versions, f"{path.name}: the stamp cell has no output; execute the notebook"
    assert versions == [_version()] * len(versions), \
        f"{path.name} was executed by minibert4rec {versions[0]}, not {_version()} (pyproject.toml): execute it again"


# Numbers the prose may quote without a cell printing them: the paper's ML-1m results (Sun et al., 2019, Table 2:
# BERT4Rec's HR@10 0.6970 and NDCG@10 0.4818, also quoted rounded to three digits) and its Adam settings (beta1 0.9,
# beta2 0.999, which an exercise asks for). Keep this list SHORT: any other number belongs in a cell's output, or
# in prose rendered from one.
PAPER_CONSTANTS = {"0.6970", "0.697", "0.4818", "0.482", "0.9", "0.999"}
DECIMAL = re.compile(r"(?<![\w.])(\d+\.\d+)(?:x|×)?(?![\w.]*\d)")


def quoted_numbers(markdown: str) -> list[str]:
    """The decimals a markdown cell states as results, without LaTeX, code, links and version numbers."""
    text = re.sub(r"```.*?```", " ", markdown, flags=re.S)  # code blocks: commands, not results
    text = re.sub(r"\$\$.*?\$\$|\$[^$\n]+\$", " ", text, flags=re.S)  # equations
    text = re.sub(r"`[^`\n]*`", " ", text)  # inline code
    text = re.sub(r"\]\([^)]*\)|<[^>]+>|https?://\S+", " ", text)  # link targets, html tags, bare addresses
    text = re.sub(r"\bv?\d+\.\d+\.\d+\S*", " ", text)  # versions such as v0.1.0 or 2.13.0
    text = re.sub(r"§\s*\d+(\.\d+)*", " ", text)  # the paper's section numbers (§4.1)
    return DECIMAL.findall(text)


def test_the_quoted_number_pattern():
    assert quoted_numbers("NDCG@10 0.482 vs ours 0.4313, a 1.77x speed-up; 2.5 s") == ["0.482", "0.4313", "1.77", "2.5"]
    assert quoted_numbers("$\\sqrt{0.5}$ and $$x = 1.5$$, `--lr 0.001`, v0.1.0, torch 2.13.0, [a](x/1.2.png)") == []
    assert quoted_numbers("3 epochs of 128 rows, 1e-3, the paper's §4.1 and § 3.6") == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_prose_quotes_only_numbers_the_cells_produce(path):
    """A decimal in the prose must appear in an output or in a code cell: written by hand it drifts from the runs.
    Prose rendered with display(Markdown(f"...")) is an output, so it passes by construction."""
    cells = json.loads(path.read_text())["cells"]
    produced = "\n".join(["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
                         + [t for c in cells if c["cell_type"] == "code" for t in _output_texts(c)])
    stray = sorted({(i, n) for i, c in enumerate(cells) if c["cell_type"] == "markdown"
                    for n in quoted_numbers("".join(c["source"])) if n not in produced and n not in PAPER_CONSTANTS})
    assert not stray, (f"{path.name}: the prose quotes numbers no cell produces (cell, number): {stray}; print them, "
                       "or render the sentence from the outputs with display(Markdown(f'...')).")
