""""Recommend movies for me": pick a few titles, get the model's top k, in a notebook.

:func:`recommend_for_titles` does the work (titles -> item ids -> :func:`~minibert4rec.apps.recommend.recommend`
-> a table with titles); :func:`recommend_widget` wraps it in ipywidgets (a multi-select of titles, a button, an
output area) and, where ipywidgets is not installed, returns the plain table for ``fallback_titles`` instead, so
that the same notebook cell works everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..data import SequenceData
from ..model import BERT4Rec
from .recommend import recommend


def title_to_item(data: SequenceData) -> dict[str, int]:
    """Each title -> its item id (1..N). Two movies with the same title keep the first id (ML-1m has none)."""
    mapping: dict[str, int] = {}
    for item in range(1, data.n_items + 1):
        mapping.setdefault(data.title(item), item)
    return mapping


def recommend_for_titles(model: BERT4Rec, data: SequenceData, titles: Sequence[str], k: int = 10) -> pd.DataFrame:
    """The model's top ``k`` for a history of ``titles`` (oldest first), seen titles removed, as a table."""
    mapping = title_to_item(data)
    unknown = [t for t in titles if t not in mapping]
    if unknown:
        raise ValueError(f"unknown title {unknown[0]!r}: pick titles of {data.name} (data.title(i) for i in 1..N).")
    if not titles:
        raise ValueError("pick at least one title.")
    history = [mapping[t] for t in titles]
    top = recommend(model, history, k=k, exclude_seen=True)
    return pd.DataFrame([{"rank": r + 1, "title": data.title(i), "score": round(s, 3)}
                         for r, (i, s) in enumerate(top)]).set_index("rank")


def _widgets() -> Any | None:
    """The ipywidgets module, or None where it is not installed."""
    try:
        import ipywidgets
    except ImportError:
        return None
    return ipywidgets


def recommend_widget(model: BERT4Rec, data: SequenceData, fallback_titles: Sequence[str], k: int = 10,
                     options: Sequence[str] | None = None) -> Any:
    """A widget to pick titles and get the top ``k``; without ipywidgets, the table for ``fallback_titles``.

    With ipywidgets: a ``VBox`` of a ``SelectMultiple`` of ``options`` (default: every title, alphabetical; the
    ``fallback_titles`` selected), a ``Button`` and an ``Output`` where a click prints the recommendations. Its
    children are in that order; the button's click handler is also at ``box.on_recommend`` (for tests).
    """
    widgets = _widgets()
    if widgets is None:
        return recommend_for_titles(model, data, list(fallback_titles), k=k)
    options = sorted(title_to_item(data)) if options is None else list(options)
    picker = widgets.SelectMultiple(options=options, value=tuple(t for t in fallback_titles if t in options),
                                    rows=12, description="I liked", layout=widgets.Layout(width="60%"))
    button = widgets.Button(description=f"Recommend {k} movies", button_style="primary")
    output = widgets.Output()

    def on_recommend(_button: Any = None) -> None:
        output.clear_output()
        with output:
            if not picker.value:
                print("Pick at least one title (ctrl/cmd-click selects several).")
                return
            print(f"Top {k} for a history of {len(picker.value)} titles (the titles you picked are removed):")
            print(recommend_for_titles(model, data, list(picker.value), k=k).to_string())

    button.on_click(on_recommend)
    box = widgets.VBox([picker, button, output])
    box.on_recommend = on_recommend
    return box
