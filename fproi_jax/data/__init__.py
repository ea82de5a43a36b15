"""What the networks train on: a TFDS split read through grain into sharded global batches,
the evaluation batches with their ids, patients and groups, ROI deformations and the
segmentation baselines' augmentations. Reads data_builders; imports nothing above it."""
