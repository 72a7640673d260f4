"""The organisms: profiles, loaders, preference data and the interventions on it.

Importing this package must stay cheap (no torch): the CLI imports it to list profiles.
"""

from organism.errors import InputError

__all__ = ["InputError"]
