"""The Applications registry: model, schemas, filters, service and views."""
