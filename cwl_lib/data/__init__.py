"""Datasets: where they are, whether they are present and sound, how to load them. ``require`` checks content
too (:mod:`cwl_lib.data.check`); ``missing`` and ``locate`` look at presence only.
"""
from .check import require
from .registry import RESOURCES, MissingDataError, locate, missing, paper_sizes, requirements, resource

__all__ = ["RESOURCES", "MissingDataError", "locate", "missing", "paper_sizes", "require", "requirements", "resource"]
