"""A faithful, deterministic simulator of the Spotify Web API for tests and benchmarks.

Import the submodules (`crawler.sim.server`, `.catalog`, `.config`) directly: the package
itself stays empty so that registering the `sim` sub-command does not load aiohttp.web.
"""
