"""Loading sources into an :class:`~ppeval.extract.Extract` (being written)."""

from __future__ import annotations


def load_extract(config):  # replaced by the loader implementation
    from ..errors import NotYetAvailableError

    raise NotYetAvailableError("loading is not implemented yet")
