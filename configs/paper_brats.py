"""The paper's BRATS 2017 comparison (section 3.2, Tables 3-4, Figures 7-8), for
`launch.py --mode=experiment`: every method of config.experiment.methods (Fproi-GAN, its
no-RFB ablation, CycleGAN, Pix2Pix, DCGAN), each trained with 3 seeds.

Training as the paper: no augmentation, Adam with default parameters (b1 0.9, b2 0.999),
learning rate 2e-4, 300 epochs, batch size 1 (all configs/base.py defaults). The seeds are
ours: the paper reports one run per method.
"""
from configs import brats


def get_config():
    config = brats.get_config()
    config.experiment.seeds = 3
    return config
