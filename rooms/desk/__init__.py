"""The desk: agents, their presence and load, taking and passing rooms, what consoles and the
operations page read."""
