"""Generation backends (transformers, and vLLM as a lazily imported extra) and the content-addressed generation
cache that makes every run resumable."""
