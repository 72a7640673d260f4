"""The prompt sets and the distractor constraint catalog, shipped as versioned data files."""
