"""The "Recommend movies for me" widget of notebook 07, headless: with ipywidgets and without it."""

import builtins

import pandas as pd
import pytest
import torch

from minibert4rec import BERT4RecConfig
from minibert4rec.apps import recommend_widget as rw
from minibert4rec.apps.recommend import recommend
from minibert4rec.data import SequenceData
from minibert4rec.model import BERT4Rec

N_ITEMS = 12


@pytest.fixture
def setup():
    torch.manual_seed(0)
    titles = {i: f"Movie {i:02d} ({1980 + i})" for i in range(1, N_ITEMS + 1)}
    data = SequenceData(sequences=[[1, 2, 3, 4], [5, 6, 7, 8]], n_items=N_ITEMS, user_ids=[1, 2],
                        item_ids=list(range(1, N_ITEMS + 1)), titles=titles, name="toy")
    model = BERT4Rec(BERT4RecConfig(hidden_size=8, inner_size=16, n_layers=1, n_heads=2, max_seq_length=6),
                     N_ITEMS).eval()
    return model, data


def test_recommend_for_titles_removes_the_picked_titles(setup):
    model, data = setup
    picked = ["Movie 03 (1983)", "Movie 07 (1987)", "Movie 01 (1981)"]
    table = rw.recommend_for_titles(model, data, picked, k=5)
    assert list(table.index) == [1, 2, 3, 4, 5] and list(table.columns) == ["title", "score"]
    assert not set(picked) & set(table["title"])
    assert list(table["title"]) == [data.title(i) for i, _ in recommend(model, [3, 7, 1], k=5)]
    with pytest.raises(ValueError, match="unknown title"):
        rw.recommend_for_titles(model, data, ["Not a movie"], k=5)


def test_with_widgets_the_button_prints_recommendations(setup, capsys):
    pytest.importorskip("ipywidgets")
    import ipywidgets as widgets

    model, data = setup
    picked = ["Movie 02 (1982)", "Movie 05 (1985)"]
    box = rw.recommend_widget(model, data, fallback_titles=picked, k=3)
    assert isinstance(box, widgets.VBox)
    picker, button, output = box.children
    assert isinstance(picker, widgets.SelectMultiple) and isinstance(button, widgets.Button)
    assert isinstance(output, widgets.Output)
    assert len(picker.options) == N_ITEMS and picker.value == tuple(picked)
    button.click()  # what a click in the notebook does
    printed = capsys.readouterr().out
    expected = rw.recommend_for_titles(model, data, picked, k=3)
    assert "Top 3" in printed and all(title in printed for title in expected["title"])
    picker.value = ()
    box.on_recommend()
    assert "Pick at least one title" in capsys.readouterr().out


def test_without_widgets_it_falls_back_to_a_plain_table(setup, monkeypatch):
    model, data = setup
    real_import = builtins.__import__

    def no_ipywidgets(name, *args, **kwargs):
        if name == "ipywidgets" or name.startswith("ipywidgets."):
            raise ImportError("No module named 'ipywidgets'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ipywidgets)
    assert rw._widgets() is None
    picked = ["Movie 04 (1984)", "Movie 09 (1989)"]
    table = rw.recommend_widget(model, data, fallback_titles=picked, k=4)
    assert isinstance(table, pd.DataFrame) and len(table) == 4
    pd.testing.assert_frame_equal(table, rw.recommend_for_titles(model, data, picked, k=4))
