"""Errors every stage can raise to an entry point."""

from typing import Any

from django_stubs_ext import StrOrPromise


class ActionError(Exception):
    """An agent's command refused: `code` names the reason for the console (and never changes),
    `message` says it to a person.

    The message is kept as its lazy translation and the values that fill it (named placeholders:
    `ActionError("at_capacity", _("... %(count)d ..."), count=5)`), and rendered when read, so in
    the language active then: the agent's, at the view or the consumer that answers."""

    def __init__(self, code: str, message: StrOrPromise, /, **params: Any) -> None:
        super().__init__(code, message)
        self.code = code
        self.template = message
        self.params = params

    @property
    def message(self) -> str:
        # `%` on the lazy string itself: an ngettext_lazy keyed by a placeholder picks its plural
        # form from the params only there.
        return str(self.template % self.params) if self.params else str(self.template)

    def __str__(self) -> str:
        return self.message
