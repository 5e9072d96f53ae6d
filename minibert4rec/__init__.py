"""minibert4rec: BERT4Rec (Sun et al., CIKM 2019) from scratch, one module per idea.

data -> masking -> attention -> model -> train -> evaluate (metrics) -> viz; see the numbered notebooks.
"""

from .support.config import BERT4RecConfig
from .support.runtime import is_smoke_run, run_sizes, set_threads

try:  # the version is written once, in pyproject.toml
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("minibert4rec")
except PackageNotFoundError:  # running from a source folder that was never installed
    __version__ = "unknown"
__all__ = ["BERT4RecConfig", "is_smoke_run", "run_sizes", "set_threads", "__version__"]
