"""Progress bars (plumbing, not taught): a widget bar in Jupyter when ipywidgets is installed, a text bar otherwise.

``tqdm.auto`` picks the widget bar inside a Jupyter kernel; without ipywidgets (it comes with the ``[dev]`` extra and
with Colab) it warns "IProgress not found" and falls back to the text bar. The fallback is fine, so it is silent.
"""

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="IProgress not found")
    from tqdm.auto import tqdm

__all__ = ["tqdm"]
