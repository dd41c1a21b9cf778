"""Public events of the chat service, one module per major version."""
