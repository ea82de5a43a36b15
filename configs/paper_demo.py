"""The comparison of `make paper-demo`: every method on phantom BRATS at 64 x 64, on a CPU:
the paper's five and Fproi-GAN + context, which draws the new pairs into real slices.

Like configs/demo.py (its training settings: Adam b1 0.5, lr 5e-4 with linear decay, random
flips, batch 4), with half-width networks for every method and 300 steps each. Fproi-GAN's
cycle weight is the demo's 25; CycleGAN and DCGAN get the same 25 so that no method has a
setting the others lack. It shows the pipeline end to end; its numbers are no evidence.
"""
from configs import demo
from fproi_jax.methods import COMPARISON


def get_config():
    config = demo.get_config()
    config.data.data_dir = "runs/paper_demo/tfds"
    # Three seeds, as the paper configs: the verdict's intervals resample them with the patients.
    config.experiment.seeds = 3
    # The paper's five, then Fproi-GAN + context (the new pairs in real anatomy), with
    # Fproi-GAN's demo widths and weights.
    config.experiment.methods = (*COMPARISON, "fproi_gan_context")
    config.model.fproi_gan_context.update(config.model.fproi_gan.to_dict())
    config.model.cycle_gan.update(generator_width=16, residual_blocks=6, discriminator_width=16,
                                  cycle_weight=25.0)
    config.model.pix2pix.update(generator_width=16, discriminator_width=16)
    config.model.dcgan.update(generator_features=(16, 32, 64, 128),
                              discriminator_features=(16, 32, 64, 128), cycle_weight=25.0)
    # Table 6's segmenter at a quarter of BasicUNet's widths: 300 steps take 8 s here.
    config.segment.update(features=(8, 8, 16, 32, 64, 8), steps=300, seeds=3)
    config.train.batch_size = 4
    config.train.num_steps = 300
    config.train.checkpoint_every = 100
    config.train.sample_every = 100
    config.train.log_every = 10   # 30 points per loss curve in the report
    return config
