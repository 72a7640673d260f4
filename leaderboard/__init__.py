"""Static HTML leaderboards and Hub push/pull of the benchmark and results datasets."""
