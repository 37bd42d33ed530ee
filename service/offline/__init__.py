"""Offline scoring of lab exports (`hct score`) through the service's own `Predictor`."""
