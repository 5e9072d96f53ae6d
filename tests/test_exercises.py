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
    assert len(_printed(ex.list_exercises, 3).splitlines()) == 1 + 4  # notebook 03: one question, three to implement
    with pytest.raises(ValueError, match="did you mean 'ndcg_at_k'"):
        ex.hint("ndcg_at_10")


def test_solution_without_a_checkout_downloads_the_installed_commits_file(monkeypatch, tmp_path):
    """A pip install (Colab) has no solutions/ folder: solution() prints the repository's file, downloaded at the
    commit pip installed (recorded in direct_url.json), or, offline, the file's full URL."""
    monkeypatch.setattr(ex, "SOLUTIONS_DIR", tmp_path / "solutions")
    monkeypatch.setattr(ex, "_installed_source", lambda: ("https://github.com/minibert4rec/minibert4rec", "abc123"))
    raw, page = ex.solution_urls("target_rank")
    assert raw == "https://raw.githubusercontent.com/minibert4rec/minibert4rec/abc123/solutions/target_rank.py"
    assert page == "https://github.com/minibert4rec/minibert4rec/blob/abc123/solutions/target_rank.py"
    asked = []

    def serve(url, timeout):
        asked.append(url)
        return io.BytesIO((SOLUTIONS / Path(url).name).read_bytes())

    monkeypatch.setattr("urllib.request.urlopen", serve)
    printed = _printed(ex.solution, "target_rank")
    assert asked == [raw] and printed.startswith(f"# solutions/target_rank.py  ({page})\n")
    assert (SOLUTIONS / "target_rank.py").read_text().rstrip() in printed

    def offline(url, timeout):
        raise OSError("no network")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    printed = _printed(ex.solution, "sampled_rank")
    assert "Could not download the solution (OSError: no network)" in printed
    assert "https://github.com/minibert4rec/minibert4rec/blob/abc123/solutions/sampled_rank.md" in printed


def test_the_installed_source_defaults_to_the_repository_and_main(monkeypatch):
    from importlib import metadata

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", not_installed)
    assert ex._installed_source() == (ex.REPOSITORY, "main")


def test_the_exercises_package_has_no_import_cycle():
    """The list lives in registry, which neither the package's __init__ nor grading has to import lazily."""
    for module in ("registry", "grading", "framework"):
        source = (ROOT / "minibert4rec" / "exercises" / f"{module}.py").read_text()
        assert "from . import EXERCISES" not in source and "from . import list_exercises" not in source
    assert ex.EXERCISES is ex.registry.EXERCISES and ex.CHECKS is ex.registry.CHECKS


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


def test_transformer_block_check_catches_a_missing_residual_and_other_names():
    solution = _load(SOLUTIONS / "transformer_block.py", "transformer_block")

    class no_residual(solution):  # noqa: N801
        def forward(self, x, attn_mask):
            attended, _ = self.attention(x, attn_mask=attn_mask)
            x = self.attn_norm(self.attn_dropout(attended))
            return self.ffn_norm(x + self.feed_forward(x))

    class other_names(torch.nn.Module):  # noqa: N801
        def __init__(self, hidden_size, n_heads, inner_size, dropout):
            super().__init__()
            self.block = torch.nn.TransformerEncoderLayer(hidden_size, n_heads, inner_size, dropout, batch_first=True)

        def forward(self, x, attn_mask):
            return self.block(x)

    assert "eval-mode output" in repr(ex.CHECKS["transformer_block"](no_residual))
    assert "parameter names differ" in repr(ex.CHECKS["transformer_block"](other_names))
