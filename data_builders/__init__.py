"""Dataset builders of fproi-jax.

``import data_builders`` registers the TFDS builders ``brats2017`` and ``inbreast``, so
``tfds.data_source('brats2017', data_dir=..., split='train')`` finds them. Build with
``python -m data_builders NAME --manual_dir=DIR --data_dir=DIR``. Synthetic raw data in the
same layouts: ``python -m data_builders.phantom brats|inbreast --out=DIR``. The third
builder, ``synthetic_pairs`` (``SyntheticPairs``, not registered), holds what
``launch.py --mode=synthesize`` wrote. What the rest of fproi-jax knows about each dataset
(ids, patients, groups, geometry, how to build it): ``data_builders.registry``.
"""

from data_builders.common import BadInputError
from data_builders.brats2017 import Brats2017, Brats2017Config
from data_builders.inbreast import Inbreast, InbreastConfig
from data_builders.synthetic_pairs import SyntheticPairs

__all__ = ["BadInputError", "Brats2017", "Brats2017Config", "Inbreast", "InbreastConfig",
           "SyntheticPairs"]
