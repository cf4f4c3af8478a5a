"""Executable edition of "weighting convolutions".

One module per idea of the paper: ``kronecker`` and ``convolution`` (Section III), ``weighting`` and
``transfer`` (Section IV-A/B), ``pruning`` (IV-C), ``retrieval`` (V-B). The strategies of Section V are
values of ``strategies``. The three studies (``studies.classification`` for Tables I-II,
``studies.retrieval`` for Table III, ``studies.pruning`` for Table IV and Fig. 3) share one shape and one
record store (``records``), and ``executor`` runs any of them; ``comparison`` sets every table's cells
beside the paper's, with the records behind each of ours. ``models``, ``data``, ``profiles``,
``tables``, ``paper``, ``checks``, ``display``, ``reproduce`` and ``dryrun`` hold the machinery that runs
the notebooks of the book and projects the paper profile's cost; ``graphed`` replays training steps
from CUDA graphs on a GPU.
"""

__version__ = "0.1.0"
