"""A run that trains on a 2-core CPU in minutes: phantom BRATS data at 64 x 64, half widths.

Three settings differ from the paper-faithful defaults so that the short run shows the
cycle at work: Adam b1 = 0.5 and lr 5e-4 (the canonical CycleGAN's b1, a faster rate), and
cycle weight 25. With the default 10, 800 steps give a good G(x) but an F(G(x)) that is
not yet the input: G must learn to hide the image in its near-binary output (Chu et al.
2017, "CycleGAN, a master of steganography"), and a larger lambda makes that happen sooner.
A fourth, random left-right flips, is explained below.
"""
from configs import base


def get_config():
    config = base.get_config()
    config.data.name = "brats2017"
    config.data.builder_config = "paper"
    config.data.data_dir = "runs/demo/tfds"
    config.data.image_size = 64
    # Not in the paper, which mentions no augmentation: random left-right flips give the 26
    # phantom training slices more variety, and the README's demo figures were measured
    # with them. A flipped pair is still a plausible pair: tumours sit on either side.
    config.data.augment.flip = True
    config.model.fproi_gan.rfb_features = (16, 32, 32, 16)
    config.model.fproi_gan.generator_width = 16
    config.model.fproi_gan.discriminator_features = (32, 64, 128, 256)
    config.model.fproi_gan.cycle_weight = 25.0
    config.train.batch_size = 4
    config.train.num_steps = 800
    config.train.learning_rate = 5e-4
    config.train.adam_b1 = 0.5
    config.train.lr_schedule = "linear_decay"
    config.train.log_every = 25
    config.train.checkpoint_every = 200
    config.train.sample_every = 200
    return config
