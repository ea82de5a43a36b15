"""TFDS builder ``synthetic_pairs``: the image/ROI pairs that ``launch.py --mode=synthesize``
synthesized (fproi_jax/evaluation/synthesize.py writes it into WORKDIR/synthetic/tfds).

One split, ``train``; array_record files. Features: ``image``, ``roi``, ``patient_id`` as
every paired dataset (common.pair_features), plus where each pair came from:
``source_id`` (``<dataset>/<example id>`` or a mask file name),
``grade`` (0 HGG, 1 LGG, -1 unknown), ``case_id`` and ``slice_index`` ("" and -1 where
unknown: INbreast sources, mask files); see ``UNKNOWN_SOURCE``; and how it was drawn
(``PAIR_KEYS``): ``context_id``, the image it was drawn into ("" for a method that draws
none), and ``sample``, which of the K images of one mask in one context (0 for one). An
example's key, and its id (data_builders.registry), is ``<source_id>/<sample>``.

Not registered with tfds: it is built from the pairs in memory, not from a manual dir, and
tfds reads a written one from its own files (features and sizes in dataset_info.json),
whatever the image size.
"""
import numpy as np
import tensorflow_datasets as tfds

from data_builders.common import pair_features

UNKNOWN_SOURCE = {"grade": -1, "case_id": "", "slice_index": -1}
SOURCE_KEYS = tuple(UNKNOWN_SOURCE)
PAIR_KEYS = ("context_id", "sample")

with tfds.core.registered.skip_registration():

    class SyntheticPairs(tfds.core.GeneratorBasedBuilder):
        """Synthesized image/ROI pairs of a trained Fproi-GAN (one split, 'train').

        ``pairs``: dicts with every feature; ``image_size``: their side length.
        """

        VERSION = tfds.core.Version("1.1.0")
        RELEASE_NOTES = {"1.0.0": "Initial release.",
                         "1.1.0": "context_id and sample; keyed by <source_id>/<sample>."}

        def __init__(self, *, pairs: list, image_size: int, description: str, **kwargs):
            self._pairs, self._image_size, self._description = pairs, image_size, description
            super().__init__(file_format="array_record", **kwargs)

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self, description=self._description,
                features=tfds.features.FeaturesDict({
                    **pair_features(self._image_size),
                    "source_id": tfds.features.Text(),
                    "grade": tfds.features.Scalar(np.int32),
                    "case_id": tfds.features.Text(),
                    "slice_index": tfds.features.Scalar(np.int32),
                    "context_id": tfds.features.Text(),
                    "sample": tfds.features.Scalar(np.int32),
                }),
                supervised_keys=("image", "roi"))

        def _split_generators(self, dl_manager):
            del dl_manager
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for pair in self._pairs:
                yield f"{pair['source_id']}/{pair['sample']}", pair
