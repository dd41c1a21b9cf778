"""The kit every Shopstream service is built from."""
