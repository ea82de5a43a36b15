"""A run that trains on a 2-core CPU in minutes: phantom BRATS data at 64 x 64, half widths."""
from configs import base


def get_config():
    config = base.get_config()
    config.data.name = "brats2017"
    config.data.builder_config = "paper"
    config.data.data_dir = "runs/demo/tfds"
    config.data.image_size = 64
    config.model.rfb_features = (16, 32, 32, 16)
    config.model.generator_width = 16
    config.model.discriminator_features = (32, 64, 128, 256)
    config.train.batch_size = 4
    config.train.num_steps = 600
    config.train.lr_schedule = "linear_decay"
    config.train.log_every = 25
    config.train.checkpoint_every = 200
    config.train.sample_every = 200
    return config
