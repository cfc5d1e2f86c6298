"""Serving: the HTTP API, the ANN index, the durable event store and the web page."""
