"""Alerts that reach people: drift, failed runs, gate rejections and rollbacks, pushed to webhooks."""
