"""Public events of the live service, one module per major version."""
