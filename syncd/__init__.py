"""syncd: the realtime sync daemon of OmegaFrame Studio."""

__version__ = "0.1.0"
