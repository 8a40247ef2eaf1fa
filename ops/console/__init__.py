"""`tideline console`: the web page an operator keeps open, reading only Kafka and /metrics."""
