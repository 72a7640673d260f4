"""Preference data with stable pair ids, the interventions on it (remove, flip, exclude sources) and the rankings
that attribution writes and interventions read."""
