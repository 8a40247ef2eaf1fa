"""Card transactions as a business system sends them: the JSON both pipeline benchmarks feed."""

import json
from datetime import datetime


def json_event(event_id: str, at: datetime, card: str, i: int) -> bytes:
    """A valid card event; `i` varies the merchant, amount and card presence."""
    return json.dumps(
        {
            "event_id": event_id,
            "event_time": at.isoformat(),
            "card_id": card,
            "merchant_id": f"m-{i % 300}",
            "category": "grocery",
            "amount": 1.0 + i % 500,
            "country": "FR",
            "channel": "web",
            "card_present": i % 2 == 0,
        }
    ).encode()
