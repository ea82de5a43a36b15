"""Training: the train state and its optimizers, the sharded train step every network
trains through, the loop with checkpoints and logs (loop.py), and fit.py for a task's
networks on arrays in memory."""
