"""The helpers every layer of organism-bench shares: the input error, atomic files, hashing, cache paths and number
formatting. The lowest layer: it imports no other package of the project."""
