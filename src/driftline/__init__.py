"""driftline: monitor machine-learning models inside the warehouse.

The Python API, the same engine as the command line (see ``driftline.api``):

    >>> import driftline
    >>> sorted(name for name in driftline.__all__ if not name[0].isupper() and name != "__version__")
    ['backfill', 'compile', 'report', 'run', 'validate']

The functions are imported on first use, so ``import driftline`` stays light.
"""

from driftline.errors import ConfigError, DriftlineError, WarehouseError

__version__ = "0.1.0"

_API = ("run", "backfill", "validate", "compile", "report")

__all__ = ["ConfigError", "DriftlineError", "WarehouseError", "__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from driftline import api

        return getattr(api, name)
    raise AttributeError(f"module 'driftline' has no attribute {name!r}")
