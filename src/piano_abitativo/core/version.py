"""The version of piano-abitativo, for the modules of every layer (the root package also
exposes it, but importing the root from a layer would reach the layers above it)."""

__version__ = "0.1.0"
