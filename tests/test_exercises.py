"""Every exercise check accepts its solution, rejects a known-wrong answer, and never raises."""

import importlib.util
import io
import json
import re
import runpy
import tomllib
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import torch

import minibert4rec
from minibert4rec import exercises as ex

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
IMPLEMENT = [name for name, e in ex.EXERCISES.items() if e.kind == "implement"]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(f"_solution_{path.parent.name}_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def _printed(fn, *args) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        fn(*args)
    return out.getvalue()


def test_every_exercise_has_a_check_hints_and_a_solution_file():
    assert set(ex.CHECKS) == set(IMPLEMENT)
    for name, e in ex.EXERCISES.items():
        assert len(e.hints) == 3 and e.notebook in {f"0{i}" for i in range(1, 9)}
        assert ex.solution_path(name).is_file(), f"missing solution for {name}"
        if e.kind == "implement":
            assert (SOLUTIONS / "wrong" / f"{name}.py").is_file(), f"missing known-wrong answer for {name}"
    for notebook in {e.notebook for e in ex.EXERCISES.values()}:  # >= 3 per notebook, >= 1 to implement
        kinds = [e.kind for e in ex.EXERCISES.values() if e.notebook == notebook]
        assert "implement" in kinds and "question" in kinds and len(kinds) >= 3


@pytest.mark.parametrize("name", IMPLEMENT)
def test_check_accepts_the_solution(name):
    result = ex.CHECKS[name](_load(SOLUTIONS / f"{name}.py", name))
    assert result.status == "correct" and result.passed is True and bool(result), repr(result)
    assert repr(result) == f"✅ {name}: correct ({result.n_cases} cases)" and result.n_cases >= 4


@pytest.mark.parametrize("name", IMPLEMENT)
def test_check_rejects_the_known_wrong_answer(name):
    result = ex.CHECKS[name](_load(SOLUTIONS / "wrong" / f"{name}.py", name))
    assert result.status == "wrong" and result.passed is False and not result, repr(result)
    lines = repr(result).splitlines()
    assert lines[0].startswith(f"❌ {name}: wrong on case ") and lines[1].startswith(f"   input:    {name}(")
    assert any(line.startswith("   problem:  ") for line in lines) and f"hint('{name}')" in lines[-1]


@pytest.mark.parametrize("name", IMPLEMENT)
def test_unsolved_stub_is_not_attempted(name):
    def stub(*args):
        raise NotImplementedError

    result = ex.CHECKS[name](stub)
    assert result.status == "not attempted" and result.passed is None and not result
    assert repr(result).startswith(f"⏳ {name}: not attempted")


@pytest.mark.parametrize("name", IMPLEMENT)
@pytest.mark.parametrize("behaviour", ["raises", "garbage", "none", "not a function"])
def test_broken_answers_are_wrong_and_never_raise(name, behaviour):
    def broken(*args):
        if behaviour == "raises":
            raise ZeroDivisionError("division by zero")
        return None if behaviour == "none" else "garbage"

    result = ex.CHECKS[name](42 if behaviour == "not a function" else broken)
    assert result.status == "wrong", repr(result)
    if behaviour == "raises":
        assert "raised ZeroDivisionError: division by zero" in repr(result)
        assert "on case 1 of" in repr(result)


def test_verdicts_are_deterministic_and_show_the_failing_input():
    wrong = _load(SOLUTIONS / "wrong" / "leave_one_out.py", "leave_one_out")
    first, second = ex.check_leave_one_out(wrong), ex.check_leave_one_out(wrong)
    assert repr(first) == repr(second)
    assert repr(first).splitlines() == [
        "❌ leave_one_out: wrong on case 1 of 14",
        "   input:    leave_one_out([1, 2, 3, 4, 5])",
        "   problem:  the training part is [1, 2, 3, 4], expected [1, 2, 3]",
        "   expected: ([1, 2, 3], 4, 5)",
        "   got:      ([1, 2, 3, 4], 4, 5)",
        "   Stuck? hint('leave_one_out') gives a hint, solution('leave_one_out') the answer.",
    ]


def test_in_place_changes_and_a_later_not_implemented_are_wrong():
    solution = _load(SOLUTIONS / "mask_last.py", "mask_last")

    def in_place(items, mask_id):
        inputs, labels = solution(items.clone(), mask_id)
        items.zero_()
        return inputs, labels

    assert "in place" in repr(ex.check_mask_last(in_place))

    def partial(ranks, k):
        if k != 10:
            raise NotImplementedError
        return 0.0 if int(ranks[0]) > 10 else float(1 / torch.log2(ranks.double() + 1).mean())

    assert ex.check_ndcg_at_k(partial).status == "wrong"


def test_cloze_mask_properties_catch_common_mistakes():
    solution = _load(SOLUTIONS / "cloze_mask.py", "cloze_mask")

    def global_rng(items, ratio, mask_id, generator):  # ignores the generator
        return solution(items, ratio, mask_id, torch.Generator().manual_seed(int(torch.randint(0, 10**6, ()))))

    def no_minimum(items, ratio, mask_id, generator):
        masked = (torch.rand(items.shape, generator=generator) < ratio) & (items != 0)
        return torch.where(masked, mask_id, items), torch.where(masked, items, 0)

    def double_rate(items, ratio, mask_id, generator):
        return solution(items, min(0.99, 2 * ratio), mask_id, generator)

    assert "same generator seed" in repr(ex.check_cloze_mask(global_rng))
    assert "none is masked" in repr(ex.check_cloze_mask(no_minimum))
    assert "of the real items, expected about" in repr(ex.check_cloze_mask(double_rate))


def _code(text: str) -> str:
    return "".join(text.split()).removeprefix("return")


@pytest.mark.parametrize("name", IMPLEMENT)
def test_no_hint_gives_the_solution_away(name):
    """A ladder: hint(name, 3) is the strongest hint, but no line of the solution's code is in any hint."""
    hints = _code(_printed(ex.hint, name, 3))
    code = [line.split("#")[0] for line in (SOLUTIONS / f"{name}.py").read_text().splitlines()]
    code = [_code(line) for line in code if line.strip() and not line.strip().startswith(("def ", "import ", "from ",
                                                                                        '"""', "return a"))]
    leaked = [line for line in code if len(line) >= 16 and line in hints]
    assert not leaked, f"hints of {name} contain solution code: {leaked}"


def test_hint_solution_and_list_print_help():
    assert _printed(ex.hint, "ndcg_at_k").startswith("Hint 1/3: ")
    assert "(more: hint('ndcg_at_k', 2))" in _printed(ex.hint, "ndcg_at_k")
    assert _printed(ex.hint, "ndcg_at_k", 9).count("Hint ") == 3
    assert "the answer: solution('ndcg_at_k')" in _printed(ex.hint, "ndcg_at_k", 3)
    assert "def causal_mask(n: int)" in _printed(ex.solution, "causal_mask")
    assert "2.11" in _printed(ex.solution, "expected_masks")
    table = _printed(ex.list_exercises).splitlines()
    assert table[0].split() == ["nb", "name", "kind", "task"] and len(table) == 1 + len(ex.EXERCISES)
    assert len(_printed(ex.list_exercises, 3).splitlines()) == 1 + 3
    with pytest.raises(ValueError, match="did you mean 'ndcg_at_k'"):
        ex.hint("ndcg_at_10")


def test_solution_without_a_checkout_points_to_the_repository(monkeypatch, tmp_path):
    monkeypatch.setattr(ex, "SOLUTIONS_DIR", tmp_path / "solutions")
    assert "solutions/target_rank.py of the minibert4rec repository" in _printed(ex.solution, "target_rank")


def test_grade_notebook_reads_verdicts(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.v4.new_notebook()
    outputs = [ex.check_causal_mask(_load(SOLUTIONS / "causal_mask.py", "causal_mask")),
               ex.check_scaled_dot_product_attention(lambda *a: 1 / 0)]
    nb.cells = [nbformat.v4.new_code_cell("...", outputs=[nbformat.v4.new_output(
        "execute_result", data={"text/plain": repr(r)}, execution_count=1)]) for r in outputs]
    path = tmp_path / "03_attention_from_scratch.ipynb"
    nbformat.write(nb, path)
    assert ex.grade_notebook(path, execute=False) == {"scaled_dot_product_attention": "wrong",
                                                      "causal_mask": "correct"}
    printed = _printed(ex._main, ["grade", "--no-execute", str(path)])
    assert printed.endswith("1/2 correct  scaled_dot_product_attention=wrong  causal_mask=correct\n")


def test_grade_notebook_executes_the_student_code(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.v4.new_notebook()
    root = str(Path(minibert4rec.__file__).resolve().parents[1])  # the kernel must import this checkout's package
    nb.cells = [nbformat.v4.new_code_cell(source) for source in [
        f"import sys; sys.path.insert(0, {root!r})",
        "from minibert4rec.exercises import check_ndcg_at_k, check_target_rank",
        "def ndcg_at_k(ranks, k):\n    raise NotImplementedError\ncheck_ndcg_at_k(ndcg_at_k)",
        "def target_rank(scores, targets):\n    return (scores[:, 1:] >= scores.gather(1, targets[:, None])).sum(1)\n"
        "check_target_rank(target_rank)",
        "raise RuntimeError('a broken cell does not stop grading')",
    ]]
    path = tmp_path / "06_evaluation.ipynb"
    nbformat.write(nb, path)
    assert ex.grade_notebook(path) == {"ndcg_at_k": "not attempted", "target_rank": "correct"}


# ------------------------------------------------------------------------------------------------ the package
def test_every_notebook_import_from_exercises_resolves():
    """The notebooks import their checks from the package itself, whichever module of it defines them."""
    imported = set()
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        source = "".join("".join(cell["source"]) for cell in json.loads(path.read_text())["cells"])
        for names in re.findall(r"from minibert4rec\.exercises import ([\w, ]+)", source):
            imported |= {name.strip() for name in names.split(",")}
    assert {f"check_{name}" for name in IMPLEMENT} <= imported  # every check is used by a notebook
    missing = [name for name in imported if not hasattr(ex, name)]
    assert not missing, f"notebooks import names that minibert4rec.exercises does not export: {missing}"
    assert set(ex.__all__) <= set(dir(ex)) and {f"check_{n}" for n in IMPLEMENT} <= set(ex.__all__)
    assert all(getattr(ex, f"check_{n}") is ex.CHECKS[n] for n in IMPLEMENT)


def test_each_notebook_module_holds_that_notebooks_exercises():
    for module in ex._NOTEBOOKS:
        number = module.__name__.rsplit(".", 1)[1][2:4]
        assert module.EXERCISES and {e.notebook for e in module.EXERCISES} == {number}, module.__name__
        assert all(hasattr(module, f"check_{e.name}") for e in module.EXERCISES if e.kind == "implement")
        assert len(Path(module.__file__).read_text().splitlines()) <= 300, f"{module.__name__} is over 300 lines"


def test_the_exercises_package_is_installed_and_runs_as_a_module(monkeypatch):
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "minibert4rec").rglob("__init__.py")}
    assert folders <= set(packages), f"pyproject.toml [tool.setuptools] packages misses {folders - set(packages)}"
    monkeypatch.setattr("sys.argv", ["python -m minibert4rec.exercises", "list"])
    out = io.StringIO()
    with redirect_stdout(out):
        runpy.run_module("minibert4rec.exercises", run_name="__main__")
    assert out.getvalue() == _printed(ex.list_exercises)
