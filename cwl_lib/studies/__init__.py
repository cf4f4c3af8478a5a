"""The paper's three studies: classification (Tables I-II), retrieval (Table III), pruning (Table IV, Fig. 3).

Each module gives ``NAME``, ``NOTEBOOK``, ``Shared`` (fields a run shares with its notebook), ``Config`` (one run),
``Parameters`` (the notebook's; defaults are the paper's), ``configs(params)``, ``key(config)``, ``order(config)``
(runs sharing data together), ``run_one(config, context)`` and ``frame`` or ``table`` of its records.
"""
from . import classification, pruning, retrieval
from .context import Context

BY_NOTEBOOK = {s.NOTEBOOK: s for s in (classification, retrieval, pruning)}

__all__ = ["BY_NOTEBOOK", "Context", "classification", "retrieval", "pruning"]
