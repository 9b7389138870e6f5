"""memat: Mass-Editing Memory with Attention in Transformers, a reproducible cross-lingual package."""
__version__ = "0.1.0"
