"""Public events of the commission service, one module per major version."""
