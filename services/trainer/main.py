"""`tideline run trainer`: drift events, training requests and a schedule in; candidates out."""

from tideline import catalog, service

from services.trainer import runs, stream, triggers
from services.trainer.settings import TrainerSettings

SERVICE = service.Service(
    name="trainer",
    settings=TrainerSettings,
    consumes=(triggers.REQUESTS, triggers.DRIFT),
    produces=(runs.CANDIDATES, runs.STATUS),
    reads=(
        catalog.topic("features"),  # training sets
        stream.LABELS,
        catalog.topic("models.updated"),  # the online line's checkpoints
        catalog.topic("models.artifacts"),
    ),
    job=stream.job,
)
