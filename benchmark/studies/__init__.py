"""The studies that need generation or a judge: the causal check, judge-delta attribution, probe targets, discovery,
the steering sweep, and the smol organism's build pipeline (which samples candidates and measures rates)."""
