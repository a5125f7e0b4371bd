"""Sampling-side pieces: the motion modules' noise schedules and context-windowed evaluation."""
