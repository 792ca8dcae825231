"""An order service and a notification service that talk through Kafka (the example of
docs/how-to/testing.md)."""
