"""The command line: `piano-abitativo …`, a thin face over `piano_abitativo.app`."""

from piano_abitativo.cli.commands import main

__all__ = ["main"]
