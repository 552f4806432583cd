"""Retraining a searched architecture to full fidelity (:mod:`.run`), optionally starting
from another network's weights (:mod:`.transfer`)."""
