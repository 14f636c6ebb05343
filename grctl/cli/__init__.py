"""The ``grctl`` command line: ``main`` (in ``dispatch``) hands each subcommand to the module beside it
that owns it."""

from grctl.cli.dispatch import main

__all__ = ["main"]
