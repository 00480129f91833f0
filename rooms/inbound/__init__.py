"""Inbound: what Meta POSTs, parsed and stored once, in the customer's open room."""
