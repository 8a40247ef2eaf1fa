"""Tideline: an event-driven MLOps platform on Kafka and Avro."""

__version__ = "0.1.0"
