"""The chargers area: the list, the charger page, remote operations and their live streams."""

from cass.chargers import routes  # noqa: F401  (registers the views on bp)
from cass.chargers.blueprint import bp

__all__ = ["bp"]
