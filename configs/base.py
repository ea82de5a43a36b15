"""Defaults shared by every experiment; the dataset configs override what differs.

Paper section 3: Adam with default parameters, learning rate 2e-4, 300 epochs.
"""
import ml_collections
from ml_collections import config_dict

from fproi_jax import methods, tasks


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.data = ml_collections.ConfigDict()
    config.data.name = "brats2017"         # a TFDS builder registered by data_builders
    config.data.builder_config = "paper"
    config.data.data_dir = "data/tfds"     # where `python -m data_builders` wrote it
    config.data.train_split = "train"
    config.data.test_split = "test"
    config.data.image_size = 256           # must divide the stored 256 x 256
    config.data.seed = 0
    # The share of the training split's patients that training sees, whole patients, seeded
    # by data.seed (fproi_jax/data/patient_subset.py); 1.0: all of them, as the paper.
    config.data.train_fraction = 1.0
    # The paper mentions no augmentation: none by default (configs/demo.py turns flips on).
    config.data.augment = ml_collections.ConfigDict({"flip": False, "rot90": False})

    # config.model.name selects the method (fproi_gan, fproi_gan_no_rfb, cycle_gan, pix2pix,
    # dcgan); config.model.<method> holds each one's settings (fproi_jax/methods/<method>.py).
    config.model = methods.model_config("fproi_gan")

    config.train = ml_collections.ConfigDict()
    config.train.batch_size = 1            # global, over all devices and hosts
    config.train.num_epochs = 300
    config.train.num_steps = config_dict.placeholder(int)  # set (> 0): overrides num_epochs
    config.train.learning_rate = 2e-4
    config.train.adam_b1 = 0.9             # Adam defaults (the paper); CycleGAN uses 0.5
    config.train.adam_b2 = 0.999
    config.train.adam_eps = 1e-8
    config.train.lr_schedule = "constant"  # or "linear_decay": to zero over the second half
    # "float32" or "bfloat16": the dtype the training step's convolutions and activations
    # run in. Parameters, optimizer states, BatchNorm statistics and losses stay float32
    # (fproi_jax/methods/base.py, Networks); evaluation, export and synthesis run in float32.
    config.train.compute_dtype = "float32"
    config.train.log_every = 50
    config.train.checkpoint_every = 1000
    config.train.keep_checkpoints = 3
    config.train.sample_every = 1000
    config.train.num_samples = 4

    config.eval = ml_collections.ConfigDict()
    config.eval.batch_size = 8             # fixed batch of evaluate/synthesize (last one padded)
    config.eval.checkpoint = ""            # export dir or training workdir; "" = --workdir
    config.eval.method = ""                # table name; "" = the method's own label
    config.eval.num_samples = 4            # examples drawn in figures and kept in samples.npz
    config.eval.compare_runs = ""          # --mode=compare: "Fproi-GAN=EVAL_DIR,CycleGAN=EVAL_DIR"
    config.eval.mask_dir = ""              # --mode=synthesize: PNG/NIfTI masks; "" = test ROIs
    # --mode=synthesize of a method that draws into an image (fproi_gan_context): the images
    # drawn into, "test" (the test split's slices; "" means it), "healthy" (the test
    # patients' tumour-free slices, split <test_split>_healthy) or a folder of PNG/NIfTI
    # images; K images per mask, with noise seeded by (noise_seed, pair index).
    config.eval.context = ""
    config.eval.samples_per_mask = 1
    config.eval.noise_seed = 0
    # --mode=evaluate of such a method: the side of the healthy box it fills, per image side
    # (evaluation/inpainting.py; boxes seeded by noise_seed).
    config.eval.inpainting_box = 1 / 4

    # The downstream tasks' settings (fproi_jax/tasks/): config.classify of paper Table 5
    # (--mode=classify: an HGG/LGG classifier trained on the test split's real slices, alone
    # and with each run's synthesized slices, tested on the train split) and config.segment
    # of Table 6 (--mode=segment: a tumour segmenter trained on the train split with and
    # without synthesized pairs, tested on the test split).
    tasks.add_task_configs(config)

    # --mode=experiment: every method in this tuple, trained with each seed in range(seeds).
    config.experiment = ml_collections.ConfigDict()
    config.experiment.methods = methods.COMPARISON  # any of methods.REGISTRY
    config.experiment.seeds = 1
    config.experiment.tasks = ("classification", "segmentation")  # of the seed-0 runs
    config.experiment.only = ""             # "<method>/seed_<k>": that run alone, no report
    # Every method, seed and segmenter trained at each fraction of the training patients
    # (config.data.train_fraction), e.g. (0.25, 1.0): Table 6 at each; the other tables at
    # the largest (fproi_jax/experiment/grid.py).
    config.experiment.train_fractions = (1.0,)
    return config
