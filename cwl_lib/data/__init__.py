"""Datasets: where they are, whether they are present, how to load them."""
from .registry import RESOURCES, MissingDataError, locate, missing, require, requirements, resource

__all__ = ["RESOURCES", "MissingDataError", "locate", "missing", "require", "requirements", "resource"]
