"""Drop repeated ids: the last ids written, however old their event times."""

from collections import OrderedDict


class Deduplicator:
    """Remembers the last `capacity` ids it saw (written or re-learned); forgets the
    oldest first. Counted in records, not in event time: a backfill of last year's
    events is deduplicated like today's."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def first_time(self, event_id: str) -> bool:
        """True the first time `event_id` is seen among the last `capacity`, else False."""
        if event_id in self._seen:
            return False
        self._seen[event_id] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True
