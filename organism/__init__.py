"""The organisms: profiles and loaders, preference data and the interventions on it, DPO training, and data
attribution from weights. Its subpackages (models < data < training < attribution, build) import one way, checked
by the import-linter contract in pyproject.toml.

Importing this package stays cheap (no torch): every public name loads its module on first use.
"""

from benchcore.lazy import lazy_exports

_NAMES = {
    "InputError": "benchcore.errors",
    "Profile": "organism.models.profiles",
    "get_profile": "organism.models.profiles",
    "list_profiles": "organism.models.profiles",
    "load_organism": "organism.models.loading",
    "locate_organism": "organism.models.loading",
    "PreferenceSet": "organism.data.preference",
    "load_preferences": "organism.data.preference",
    "load_profile_preferences": "organism.data.preference",
    "remove_top_n": "organism.data.interventions",
    "flip_top_n": "organism.data.interventions",
    "Ranking": "organism.data.ranking",
    "read_ranking": "organism.data.ranking",
    "write_ranking": "organism.data.ranking",
    "DPOConfig": "organism.training.dpo",
    "train_dpo": "organism.training.dpo",
    "AttributeConfig": "organism.attribution.methods",
    "attribute": "organism.attribution.methods",
    "evaluate_ranking": "organism.attribution.metrics",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
