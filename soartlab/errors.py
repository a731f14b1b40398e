"""Errors a user can cause. Every bad input ends in one of these, with a message that
says what was wrong and what is expected."""


class SoartLabError(ValueError):
    """Base class for every error caused by user input."""


class DataError(SoartLabError):
    """A data file (table, archive, image, array) that cannot be used."""


class CheckpointError(SoartLabError):
    """A checkpoint or run that cannot be loaded safely."""
