"""The commission service: brand–influencer agreements (versioned), commission accrued on
confirmed live orders, released after the holdback, reversed on cancel and refund, and
statements that reconcile to the ledger. Start with ``domain.py``; ``bootstrap.py`` wires it."""
