"""driftline: monitor machine-learning models inside the warehouse."""

from driftline.errors import ConfigError, DriftlineError, WarehouseError

__version__ = "0.1.0"

__all__ = ["ConfigError", "DriftlineError", "WarehouseError", "__version__"]
