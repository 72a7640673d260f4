"""The smol organism's recipe: prompt pools, candidate sources, the biased rater, pairing and ground-truth labels
(mix, rater, writer) and M0's SFT trainer. The pipeline that runs it (sampling candidates, training, measuring
rates) needs generation and the judges, so it sits above them: `benchmark.studies.organism_build.build_smol`.
"""
