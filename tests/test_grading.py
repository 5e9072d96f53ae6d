"""Grading runs the notebook, then the checks itself: printed verdicts and tampered checks earn nothing.

Each test builds a tiny notebook with nbformat (named like notebook 06, whose implement exercises are ``ndcg_at_k``
and ``target_rank``) and grades it in a real kernel, so the right and wrong answers are the files of solutions/
and solutions/wrong/.
"""

import io
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from minibert4rec import exercises as ex

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
OTHERS = [e.name for e in ex.registry.implement_exercises("06") if e.name not in ("ndcg_at_k", "target_rank")]

FORGED_PRINTS = ("print('✅ ndcg_at_k: correct (9 cases)')\n"
                 "print('✅ target_rank: correct (6 cases)')")
TAMPERED_CHECKS = """
from minibert4rec.exercises import CheckResult, registry
import minibert4rec.exercises as exercises
def forged(fn, _name="ndcg_at_k"):
    return CheckResult(_name, "correct", f"✅ {_name}: correct (9 cases)", 9)
registry.CHECKS["ndcg_at_k"] = registry.CHECKS["target_rank"] = forged
exercises.check_ndcg_at_k = exercises.check_target_rank = check_ndcg_at_k = check_target_rank = forged
"""


def _notebook(tmp_path: Path, *cells: str, name: str = "06_evaluation.ipynb") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def _answer(name: str, wrong: bool = False) -> str:
    return (SOLUTIONS / ("wrong" if wrong else "") / f"{name}.py").read_text(encoding="utf-8")


@pytest.mark.integration
def test_printed_verdicts_and_tampered_checks_earn_nothing(tmp_path):
    """The notebook prints both success lines, replaces the checks in every module it can reach, and answers one
    exercise wrongly and the other not at all: 0 marks, and the reasons are the real checks'."""
    path = _notebook(tmp_path, FORGED_PRINTS, TAMPERED_CHECKS, _answer("target_rank", wrong=True),
                     "check_target_rank(target_rank)")
    out = io.StringIO()
    with redirect_stdout(out):
        ex._main(["grade", str(path)])
    printed = out.getvalue()
    first = printed.splitlines()[0]
    assert first.startswith(f"{path}: 0/{2 + len(OTHERS)} correct  "), printed
    assert {"ndcg_at_k=missing", "target_rank=wrong"} | {f"{name}=missing" for name in OTHERS} == set(
        first.split("correct  ", 1)[1].split()), printed
    assert "the notebook defines no function `ndcg_at_k`" in printed
    assert "❌ target_rank: wrong on case" in printed and "input:    target_rank(" in printed
    assert "Kernel" not in printed and "WARNING" not in printed  # no kernel chatter in the report


@pytest.mark.integration
def test_a_right_answer_earns_its_mark_and_a_wrong_one_does_not(tmp_path):
    path = _notebook(tmp_path, "from minibert4rec.exercises import check_ndcg_at_k, check_target_rank",
                     _answer("ndcg_at_k"), "check_ndcg_at_k(ndcg_at_k)",
                     _answer("target_rank", wrong=True), "check_target_rank(target_rank)",
                     "raise RuntimeError('a broken cell does not stop grading')")
    verdicts = ex.grade(path)
    assert {name: v.status for name, v in verdicts.items()} == {"ndcg_at_k": "correct", "target_rank": "wrong",
                                                                **dict.fromkeys(OTHERS, "missing")}
    assert verdicts["ndcg_at_k"].message.startswith("✅ ndcg_at_k: correct (")
    wrong = verdicts["target_rank"].message.splitlines()  # why: failing input, problem, expected and actual
    assert wrong[0].startswith("❌ target_rank: wrong on case ") and wrong[1].startswith("   input:    target_rank(")
    assert any(line.startswith("   problem:  ") for line in wrong)
    assert any(line.startswith("   expected: ") for line in wrong) and any(line.startswith("   got:") for line in wrong)
    assert wrong == ex.check_target_rank(_load_wrong_target_rank()).message.splitlines()  # = the in-notebook check


def _load_wrong_target_rank():
    namespace: dict = {}
    exec(_answer("target_rank", wrong=True), namespace)
    return namespace["target_rank"]


@pytest.mark.integration
def test_the_last_definition_counts_and_a_stub_is_not_attempted(tmp_path):
    """The student's function as the notebook leaves it: a later cell redefining it wins, whatever was printed."""
    stub = "def {}(*args):\n    raise NotImplementedError"
    path = _notebook(tmp_path, _answer("target_rank"), stub.format("target_rank"), stub.format("ndcg_at_k"),
                     FORGED_PRINTS)
    assert ex.grade_notebook(path) == {"ndcg_at_k": "not attempted", "target_rank": "not attempted",
                                       **dict.fromkeys(OTHERS, "missing")}


@pytest.mark.integration
def test_a_notebook_that_stops_its_kernel_is_not_graded(tmp_path):
    path = _notebook(tmp_path, _answer("ndcg_at_k"), FORGED_PRINTS, "import os\nos._exit(0)")
    verdicts = ex.grade(path, timeout=60)
    assert {v.status for v in verdicts.values()} == {"not graded"}
    assert "stopped its own kernel" in verdicts["ndcg_at_k"].message


def test_a_file_name_without_a_notebook_number_is_refused(tmp_path):
    path = _notebook(tmp_path, FORGED_PRINTS, name="homework.ipynb")
    with pytest.raises(ValueError, match="must start with the notebook's number"):
        ex.grade(path)
