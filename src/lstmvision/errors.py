"""The one exception type that the CLI turns into a single clear line and a non-zero exit."""


class LstmvisionError(Exception):
    """A problem the user can fix: bad input file, missing data, unknown name, bad run folder.

    The message is one line that names the file (or the value) and what is wrong with it.
    """


class DataError(LstmvisionError):
    """A data set or input file is missing, truncated or malformed."""


class ConfigError(LstmvisionError):
    """A configuration value, key or name is not valid."""
