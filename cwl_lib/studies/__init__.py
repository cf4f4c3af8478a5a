"""The paper's three studies: classification (Tables I-II), retrieval (Table III), pruning (Table IV, Fig. 3).

Each module gives ``NAME``, ``NOTEBOOK``, ``Shared`` (fields a run shares with its notebook), ``Config`` (one run),
``Parameters`` (the notebook's; defaults are the paper's), ``configs(params)``, ``key(config)``, ``order(config)``
(runs sharing data together), ``run_one(config, context)`` and ``table(records)``.
"""
from . import classification, pruning, retrieval
from .context import Context

STUDIES = {s.NAME: s for s in (classification, retrieval, pruning)}
BY_NOTEBOOK = {s.NOTEBOOK: s for s in STUDIES.values()}

__all__ = ["STUDIES", "BY_NOTEBOOK", "Context", "classification", "retrieval", "pruning"]
