"""``python -m shopstream_live`` runs the live service until SIGTERM."""

from shopstream_service.runtime import main

from .bootstrap import build

main(build)
