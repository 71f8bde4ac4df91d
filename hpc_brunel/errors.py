"""Every exception class and exit status of hpc_brunel, and the one function that
prints a command-line error.

Exit status of `python -m hpc_brunel ...`:

  0  success
  1  unexpected failure (on some rank: the job was aborted, the failure recorded)
  2  bad input: one line naming the parameter and the allowed values, the same
     decision on every rank, nothing created
  3  the run was stopped early by SIGTERM/SIGINT, its data flushed and analyzable
"""
from __future__ import annotations

import sys

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_TERMINATED = 3

PREFIX = "hpc_brunel: error: "


class HpcBrunelError(Exception):
    """Base class of the errors hpc_brunel raises on purpose."""

    exit_status = EXIT_FAILURE


class ConfigError(HpcBrunelError, ValueError):
    """Bad user input. The message is one line that names the parameter and the
    allowed values; the CLI prints it and exits with status 2 on every rank."""

    exit_status = EXIT_BAD_INPUT


class RunDirError(ConfigError):
    """The run directory cannot be used as asked (exit status 2)."""


class NestSetupError(HpcBrunelError, RuntimeError):
    """NEST (or MPI under it) is not usable as this run needs it (exit status 2)."""

    exit_status = EXIT_BAD_INPUT


class JobError(HpcBrunelError, RuntimeError):
    """A job that hpc_brunel started or submitted failed (a point of a local series,
    sbatch) (exit status 1)."""


class IncompleteRunError(HpcBrunelError, RuntimeError):
    """The run's rank files are missing or unfinished, or it cannot be analyzed
    as asked (exit status 2)."""

    exit_status = EXIT_BAD_INPUT


def print_error(message: str, *notes: str) -> None:
    """Print the one-line command-line error `hpc_brunel: error: MESSAGE` to stderr.

    Parameters
    ----------
    message : str
        What is wrong and what is allowed, in one line.
    *notes : str
        Further text appended to the same line.
    """
    print(PREFIX + str(message), *notes, file=sys.stderr, flush=True)

