"""One module per benchmark; each defines ``BENCHMARK`` (see ``shopstream_bench.registry``)."""
