"""``python -m shopstream_orders`` runs the orders service until SIGTERM."""

from shopstream_service.runtime import main

from .bootstrap import build

main(build)
