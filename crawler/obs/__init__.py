"""Watching a crawl from elsewhere: its time series in the store, Prometheus metrics."""
