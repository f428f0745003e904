"""spotify-crawler: an async, resumable crawler of the Spotify Web API catalog."""

__version__ = "0.1.0"
