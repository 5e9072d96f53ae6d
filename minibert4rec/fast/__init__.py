"""Speed paths: each computes what a plain version in a lesson computes, and tests/test_fast_paths.py proves it."""
