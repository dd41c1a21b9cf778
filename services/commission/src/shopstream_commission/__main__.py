"""``python -m shopstream_commission`` runs the commission service until SIGTERM."""

from shopstream_service.runtime import main

from .bootstrap import build

main(build)
