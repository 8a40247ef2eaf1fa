"""`tideline run registry`: candidates and commands in; artifacts and model versions out."""

from tideline import artifacts, catalog, models, service

from services.registry import registrar, stream
from services.registry.settings import RegistrySettings

SERVICE = service.Service(
    name="registry",
    settings=RegistrySettings,
    consumes=(registrar.CANDIDATES, registrar.COMMANDS),
    produces=(models.UPDATES, artifacts.TOPIC),
    reads=(catalog.topic("features"), catalog.topic("labels")),  # holdouts, for the gate
    job=stream.job,
)
