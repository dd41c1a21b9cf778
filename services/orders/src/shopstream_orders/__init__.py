"""The orders service: orders from a live (or its replay, or the web) with their price snapshot
and attribution, the sale saga's confirmation or rejection, cancellations and refunds."""
