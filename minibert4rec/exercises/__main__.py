"""``python -m minibert4rec.exercises list | grade NOTEBOOK.ipynb ...``: see ``grading._main``."""

from .grading import _main

if __name__ == "__main__":
    _main()
