"""The shells that attack the pure protocol: a deterministic simulator and a model checker."""
