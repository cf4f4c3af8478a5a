"""The paper's three studies, one shape each: classification (Tables I-II), retrieval (Table III) and
pruning (Table IV, Fig. 3).

Every study module exposes the same names, through which the notebooks, the comparison page, the
claims ledger, the dry-run and the executor reach it:

``NAME``, ``NOTEBOOK``          the study's record name and the notebook that runs it;
``Shared``                      the fields a run shares with its notebook, each defined once;
``Config``                      one run (``Shared`` + its grid point), frozen;
``Parameters``                  the notebook's typed parameters (``Shared`` + its grid); the defaults are
                                the paper's setting, ``LAPTOP`` and ``SMOKE`` the offline profiles;
``configs(params)``             the runs a notebook's parameters make: the one place they are made;
``key(config)``, ``order(config)``  the record key (:func:`cwl_lib.records.key`), and a sort key that
                                puts runs sharing data together;
``run_one(config, context)``    one run's record (:class:`~cwl_lib.studies.context.Context`: device,
                                data, backbones);
``table(records)``              the study's table of the paper.
"""
from . import classification, pruning, retrieval
from .context import Context

STUDIES = {s.NAME: s for s in (classification, retrieval, pruning)}
BY_NOTEBOOK = {s.NOTEBOOK: s for s in STUDIES.values()}

__all__ = ["STUDIES", "BY_NOTEBOOK", "Context", "classification", "retrieval", "pruning"]
