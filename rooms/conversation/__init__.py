"""Conversation: a room's lifecycle — handed to the queue, closed by an agent, by inactivity or
by the clock."""
