"""Delivery: sending stored messages to WhatsApp and following their status to read or failed."""
