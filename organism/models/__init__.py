"""Profiles and the models they name: loading checkpoints and adapters (safetensors only), the embedded smol model,
steering hooks, token log-probs and FLOP counting. The lowest layer of `organism`."""
