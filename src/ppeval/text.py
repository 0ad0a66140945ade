"""Small helpers for the text of messages.

NumPy 2 prints its scalars as ``np.int64(2016)`` under ``repr`` (and so inside an f-string's
``!r`` or a printed list): a message must show ``2016``. :func:`plain` turns a NumPy scalar
into the Python value it holds before it is formatted.

Examples
--------
>>> import numpy as np
>>> f"{plain(np.int64(2016))!r}", f"{plain(np.str_('a'))!r}", plain("x")
('2016', "'a'", 'x')
"""

from __future__ import annotations

from typing import Any

import numpy as np


def plain(value: Any) -> Any:
    """``value`` as a plain Python value when it is a NumPy scalar; otherwise unchanged."""
    return value.item() if isinstance(value, np.generic) else value
