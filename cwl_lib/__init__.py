"""Executable edition of "weighting convolutions".

One module per idea of the paper: ``kronecker`` and ``convolution`` (Section III),
``weighting`` and ``transfer`` (Section IV-A/B), ``pruning`` (IV-C), ``retrieval`` (V-B).
``models``, ``data``, ``profiles``, ``experiments`` and ``reproduce`` hold the machinery
that runs the notebooks of the book.
"""

__version__ = "0.1.0"
