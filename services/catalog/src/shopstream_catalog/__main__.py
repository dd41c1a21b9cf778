"""``python -m shopstream_catalog`` runs the catalog service until SIGTERM."""

from shopstream_service.runtime import main

from .bootstrap import build

main(build)
