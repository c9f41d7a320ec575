"""The library's version (a leaf module: artifacts and indexes record it)."""

__version__ = "0.1.0"
