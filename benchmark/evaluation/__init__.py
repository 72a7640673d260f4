"""Grading one mitigation: specs and their validation, evaluation against the M0/M1 references, metrics and their
intervals, scoring, capability measures, results files and re-judging."""
