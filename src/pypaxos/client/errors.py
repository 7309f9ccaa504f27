"""What can go wrong with a request, split by what the caller may conclude about its effect.

* ``CommandError``: the cluster answered with an error (wrong type, bad arguments...).  The
  answer is definite: the command did not change anything.
* ``OutcomeUnknownError``: every attempt timed out, lost its connection or was told
  ``TRYAGAIN`` after the request may have reached a server.  The write may or may not have
  been applied, and it will not be applied twice: a later request from the same client cannot
  revive it, because the session's sequence number has moved on.
* ``UnavailableError``: every attempt certainly failed -- no server could be reached, or the
  cluster answered ``-TRYAGAIN no leader`` (the request never left the node) or ``-BUSY`` --
  so the request was not applied.
* ``SessionExpiredError``: the cluster forgot this client's session; the request was not
  applied and never will be (the cluster refuses the old client id from then on).  The client
  moves to a fresh client id by itself, so it can go on being used.
* ``ClientProtocolError``: the server sent something that is not RESP; a bug somewhere.
"""

from __future__ import annotations

from pypaxos.client.replies import ErrorReply


class ClientError(Exception):
    """Base of every error ``pypaxos.client`` raises."""


class CommandError(ClientError):
    """The server refused the command with an error reply; nothing was changed."""

    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(str(reply))
        self.reply = reply


class OutcomeUnknownError(ClientError):
    """All retries are used up and the request may have been applied (once), or not."""


class UnavailableError(ClientError):
    """Every attempt certainly failed (no server, no leader, queue full): not applied."""


class SessionExpiredError(ClientError):
    """The cluster no longer knows this client id; the request was not applied (and the client
    has moved to a new id)."""


class ClientProtocolError(ClientError):
    """The reply was not RESP2, or not the kind of reply the command has."""


class MembershipRefusedError(CommandError):
    """The leader refused a membership change (``PAXOS.MEMBER``): ``reason`` is one of
    ``multi.membership.RefusalReason``'s values (``already-member``, ``learner-behind``,
    ``change-in-flight``...), ``detail`` says why in words.  Nothing was changed."""

    def __init__(self, reply: ErrorReply, reason: str, detail: str) -> None:
        super().__init__(reply)
        self.reason = reason
        self.detail = detail
