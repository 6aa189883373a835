"""Errors a user can act on. The CLI and the API turn them into clear messages."""


class RagError(Exception):
    """Base class: the message is meant for the user."""

    exit_code = 1


class BadQuestionError(RagError):
    exit_code = 2


class ConfigError(RagError):
    exit_code = 2


class ModelIntegrityError(RagError):
    exit_code = 3


class IndexUnavailableError(RagError):
    """The index is missing, corrupted or locked."""

    exit_code = 4


class EmptyIndexError(IndexUnavailableError):
    pass
