"""The whole comparison (launch.py --mode=experiment): the grid of methods x seeds trained
and evaluated (grid.py), their pooled tables and verdict (tables.py), the downstream
tasks of fproi_jax/tasks, and one report of all of it."""
