"""qia: agentic image generation that closes the context gap before it renders."""

__version__ = "0.1.0"
