"""optfleet: the operator's CLI and the local fleet simulation."""

__version__ = "0.1.0"
