"""File parsers, one module per format family, chosen by :mod:`connectors.parsers.dispatch`."""

from connectors.parsers.dispatch import SUPPORTED_EXTENSIONS, parse_bytes
from connectors.parsers.model import ParsedDocument

__all__ = ["SUPPORTED_EXTENSIONS", "ParsedDocument", "parse_bytes"]
