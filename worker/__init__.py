"""argilla-worker: an active-learning worker for Argilla."""
