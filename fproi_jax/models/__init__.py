"""The Flax networks: the RFB, the generators and discriminators of every method, and the
downstream segmenter. Pure modules; no training or data code."""
