"""Atomic output for enrich: the project-wide implementation lives in ``portlabel.atomicfile``."""

from portlabel.atomicfile import atomic_output

__all__ = ["atomic_output"]
