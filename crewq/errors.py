"""crewq's exception tree (one root, `CrewqError`); drawn in `crewq.config.errors`."""

from crewq.config.errors import *  # noqa: F401,F403
from crewq.config.errors import __all__  # noqa: F401
