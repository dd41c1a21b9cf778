"""Public events of the orders service, one module per major version."""
