"""The project's exception types: each carries one sentence a user can act on."""


class ClipdeskError(Exception):
    """Base class; its message is shown to the user as-is, without a traceback."""


class ModelLoadError(ClipdeskError):
    """A model, its weights or a checkpoint could not be loaded."""


class ImageLoadError(ClipdeskError):
    """One file could not be turned into an image; the rest of a run proceeds."""


class LabelError(ClipdeskError):
    """The candidate labels cannot be used (none given, unreadable file, ...)."""


class Cancelled(ClipdeskError):
    """A long job stopped because its cancel flag was set."""


class FolderError(ClipdeskError, OSError):
    """A clipdesk folder (cache, config, data) cannot be created or is not a folder.

    Also an OSError, so code that already degrades on OSError (the embedding cache) still does.
    """

    exit_code = 1
