"""A real local Kafka broker and Redis server without Docker: `tideline stack up|down|status`."""
