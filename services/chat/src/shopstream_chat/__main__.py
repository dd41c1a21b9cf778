"""``python -m shopstream_chat`` runs the chat service until SIGTERM."""

from shopstream_service.runtime import main

from .bootstrap import build

main(build)
