"""One trained run on the test split: its metrics (scores.py, the registry), tables and
figures, the comparison of evaluated runs, and synthetic pairs for downstream use."""
