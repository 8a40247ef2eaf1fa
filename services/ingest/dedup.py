"""Drop repeated event ids within a time window."""

from collections import OrderedDict
from datetime import datetime, timedelta


class Deduplicator:
    """Remembers ids for at least `window` of event time after the newest one seen.

    Ids are forgotten oldest-arrival first; with out-of-order event times an id may be
    remembered somewhat longer than the window, never shorter.
    """

    def __init__(self, window: timedelta) -> None:
        self.window = window
        self._seen: OrderedDict[str, datetime] = OrderedDict()
        self._newest: datetime | None = None

    def __len__(self) -> int:
        return len(self._seen)

    def first_time(self, event_id: str, at: datetime) -> bool:
        """True the first time `event_id` is seen within the window, False for a repeat."""
        if event_id in self._seen:
            return False
        self._seen[event_id] = at
        if self._newest is None or at > self._newest:
            self._newest = at
        horizon = self._newest - self.window
        while self._seen:
            oldest_id, oldest_at = next(iter(self._seen.items()))
            if oldest_at >= horizon:
                break
            del self._seen[oldest_id]
        return True
