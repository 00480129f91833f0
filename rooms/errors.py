"""Errors every stage can raise to an entry point."""


class ActionError(Exception):
    """An agent's command refused; `code` names the reason for the console."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
