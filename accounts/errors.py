"""Refusals of account operations, each with a sentence saying what to change."""


class AccountRefused(Exception):
    """The request cannot be carried out as given (bad address, duplicate, bad idNatPS…).

    Nothing has been written when this is raised; the CLI maps it to exit code 2.
    """
