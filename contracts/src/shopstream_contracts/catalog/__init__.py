"""Public events of the catalog service, one module per major version."""
