"""DPO training (the trainer, its batching, and the retrain a data mitigation triggers)."""
