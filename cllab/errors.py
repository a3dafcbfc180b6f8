"""The one base class of every error a user can cause and fix (bad params, missing data, diverged training)."""


class LabError(Exception):
    """An error whose message is one line that names the bad value and the fix; stages print it and exit 1."""
