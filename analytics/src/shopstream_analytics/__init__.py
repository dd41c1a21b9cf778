"""Analysts' tools over Shopstream's event history: export, backfill, rebuild, time travel,
live reports and what-if commission."""
