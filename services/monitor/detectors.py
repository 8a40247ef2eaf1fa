"""When a change is drift: online detectors on the error stream, and the alarm that makes
one drift one event.

ADWIN and Page-Hinkley (river) watch one model version's errors (0/1 for
classification, the absolute error for regression) and react to a rise. They react
to a change, not to an error that stays high, so the monitor also checks a
performance floor. `Alarm` confirms a condition over several checks; the monitor
keeps one quiet period per champion after any event, so one drift is one event.
"""

from collections import deque

from river import drift

RECENT = 200  # errors behind a concept drift's severity


class Alarm:
    """A condition that must hold `confirm` checks in a row to fire. Once fired it is
    disarmed until a check finds it `cleared` (hysteresis: for data drift, a lower score
    than the one that fired), or until re-armed (a new champion)."""

    def __init__(self, confirm: int) -> None:
        self.confirm = confirm
        self.streak = 0
        self.armed = True

    def check(self, holds: bool, cleared: bool = True) -> bool:
        if not self.armed:
            self.armed = cleared
            return False
        self.streak = self.streak + 1 if holds else 0
        if self.streak < self.confirm:
            return False
        self.streak, self.armed = 0, False
        return True

    def rearm(self) -> None:
        self.streak, self.armed = 0, True


class ErrorStream:
    """ADWIN and Page-Hinkley over one version's errors; `warmup` errors before a verdict."""

    def __init__(self, adwin_delta: float, ph_threshold: float, warmup: int) -> None:
        self.adwin = drift.ADWIN(delta=adwin_delta)
        self.page_hinkley = drift.PageHinkley(threshold=ph_threshold, mode="up")
        self.warmup = warmup
        self.seen = 0
        self.recent: deque[float] = deque(maxlen=RECENT)

    def update(self, error: float) -> str | None:
        """The detector that saw the errors rise with this one, if any did."""
        self.seen += 1
        self.recent.append(error)
        before = self.adwin.estimation
        self.adwin.update(error)
        self.page_hinkley.update(error)
        if self.seen < self.warmup:
            return None
        # ADWIN also cuts its window when errors fall (a better model): not drift
        if self.adwin.drift_detected and self.adwin.estimation > before:
            return "adwin"
        return "page_hinkley" if self.page_hinkley.drift_detected else None

    @property
    def recent_error(self) -> float:
        return sum(self.recent) / len(self.recent) if self.recent else 0.0
