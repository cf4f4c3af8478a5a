"""Executable edition of "weighting convolutions": one module per idea of the paper (``kronecker``,
``convolution``, ``weighting``, ``transfer``, ``pruning``, ``retrieval``, ``strategies``), three ``studies``
run by ``executor`` into ``records``, and the machinery that runs and compares them.
"""

__version__ = "0.1.0"
