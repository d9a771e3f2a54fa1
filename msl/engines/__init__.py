"""Engines that decide claims: exhaustive, statistical, property-based and formal (:mod:`msl.engines.formal`)."""
