"""mirflow: music-information-retrieval features for text-to-music training data."""
__version__ = "0.1.0"
