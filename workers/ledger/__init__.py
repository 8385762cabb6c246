"""The run ledger in Redis: `keys` names every key, `store.Ledger` reads and writes them."""

from .keys import Keys
from .store import TERMINAL, Ledger

__all__ = ["Keys", "Ledger", "TERMINAL"]
