"""`tideline run featurestore`: events in; feature vectors, window state and Redis out."""

from tideline import definitions, service

from services.featurestore import state, stream
from services.featurestore.settings import FeatureStoreSettings

SERVICE = service.Service(
    name="featurestore",
    settings=FeatureStoreSettings,
    consumes=(stream.EVENTS,),
    produces=(stream.FEATURES, state.TOPIC, definitions.TOPIC),
    job=stream.job,
)
