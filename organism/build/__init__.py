"""The smol organism builder: M0 (SFT), the preference mix with its biased rater, M1 (DPO), adapters + manifest.

Submodules are imported where used (they pull in torch lazily): `organism.build.pipeline.build_smol` is the entry.
"""
