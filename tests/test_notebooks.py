"""The committed notebooks are lessons a reader can follow on GitHub: executed, error-free, ending in exercises."""

import json
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
