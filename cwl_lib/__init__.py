"""Executable edition of "weighting convolutions".

One module per idea of the paper: ``kronecker`` and ``convolution`` (Section III),
``weighting`` and ``transfer`` (Section IV-A/B), ``pruning`` (IV-C), ``retrieval`` (V-B).
``pruning_study`` and ``retrieval_transfer`` run the Table IV and Table III protocols on top of them;
``comparison`` sets every table's cells beside the paper's, with the records behind each of ours.
``models``, ``data``, ``profiles``, ``experiments``, ``tables``, ``paper``, ``reproduce`` and ``dryrun``
hold the machinery that runs the notebooks of the book and projects the paper profile's cost;
``graphed`` replays training steps from CUDA graphs on a GPU, and ``batched`` trains the runs of one
grid cell together as one vectorised model (tested, off by default: no faster on an H100).
"""

__version__ = "0.1.0"
