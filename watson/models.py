from django.db import models


class WatsonSession(models.Model):
    """The assistant session of a room: one per room, replaced in place when Watson forgets it."""

    room = models.OneToOneField(
        "rooms.Room", on_delete=models.CASCADE, related_name="watson_session"
    )
    session_id = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField()
    # last_used_at + the assistant's inactivity timeout: past it Watson has dropped the session.
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"session of room {self.room_id}"
