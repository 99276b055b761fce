"""Numeric constants shared by scoring, training, calibration and the jobs (one home each)."""

from __future__ import annotations

import math

# Smallest probability used inside a log: keeps losses finite for a confidently wrong model.
PROBABILITY_FLOOR = 1e-12
LOG_FLOOR = math.log(PROBABILITY_FLOOR)
