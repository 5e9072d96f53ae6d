"""minibert4rec: BERT4Rec (Sun et al., CIKM 2019) from scratch, one module per idea.

data -> masking -> attention -> model -> train -> metrics -> viz; see the numbered notebooks.
"""

from .config import BERT4RecConfig, is_smoke_run

__version__ = "0.1.0"
__all__ = ["BERT4RecConfig", "is_smoke_run", "__version__"]
