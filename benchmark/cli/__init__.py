"""The `organism-bench` command line: each subcommand lives in its own module and only parses, calls, prints."""
