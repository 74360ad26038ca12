"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class UserError(Exception):
    """Bad input or an unmet precondition the user can fix.

    The message names the problem and the fix in one line, e.g.
    ``"no WAV files in /tmp/x: pass --fsdd pointing at FSDD's recordings/ folder"``.
    """

    exit_code = 2
