"""The datasets of fproi-jax and what the rest of it may know about each: one entry apiece.

Per dataset (`Dataset`): its builder, how an example is named (its id), whose it is (its
patient), which group it is in (BRATS: its grade), the in-plane size of the released source
volumes (the NIfTI geometry of synthesized slices), the phantom that writes stand-in raw
data, and whether ``python -m data_builders NAME`` builds it. ``python -m data_builders``,
the input pipeline's messages and every reader of a split's ids (fproi_jax.data.pipeline:
eval_batches) read these facts here. `get` answers for any name: a dataset not listed (some
other TFDS dataset with image and roi features) gets the generic facts.
"""
from __future__ import annotations

import dataclasses

from data_builders.brats2017.brats2017 import GRADES, Brats2017
from data_builders.inbreast import Inbreast
from data_builders.synthetic_pairs import UNKNOWN_SOURCE, SyntheticPairs

POSITION = "<position>"  # an id field: the example's position in its split
NO_GROUP = UNKNOWN_SOURCE["grade"]  # the group label of an example in no group (-1)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """The facts of one dataset.

    Attributes:
      name: its TFDS name.
      builder: its builder class; None for a dataset that is not one of ours.
      id_fields: an example's id is these, joined by "/": feature names, or POSITION (its
        position in the split) where the features alone do not tell examples apart.
      patient_field: the feature naming the example's patient; an example without that
        feature is its own patient.
      group_field, groups: the feature holding the example's group label, and the group
        names by label (label i is groups[i], NO_GROUP is none); () for no groups.
      source_slice_size: the in-plane size of the released source volumes, None where the
        examples have no volume geometry; a build that records its own wins (`slice_size`).
      phantom: ``python -m data_builders.phantom PHANTOM`` writes stand-in raw data.
      build_command: whether ``python -m data_builders NAME`` builds it from raw data.
    """

    name: str
    builder: type | None = None
    id_fields: tuple[str, ...] = (POSITION,)
    patient_field: str = "patient_id"
    group_field: str | None = None
    groups: tuple[str, ...] = ()
    source_slice_size: int | None = None
    phantom: str | None = None
    build_command: bool = False

    def _field(self, example: dict, field: str):
        if field not in example:
            raise ValueError(f"{self.name}: an example without the feature {field!r} "
                             f"(it has {', '.join(sorted(example))})")
        return example[field]

    def example_id(self, example: dict, position: int) -> str:
        """The example's stable id, e.g. ``<case_id>/<slice_index>`` (brats2017)."""
        return "/".join(str(position) if field == POSITION else
                        _text(self._field(example, field)) for field in self.id_fields)

    def patient_id(self, example: dict, position: int) -> str:
        """The example's patient (its own id where it names none)."""
        if self.patient_field in example:
            return _text(example[self.patient_field])
        return self.example_id(example, position)

    def slice_size(self, metadata) -> int | None:
        """The in-plane size of one build's source volumes, as its builder recorded it
        (info.metadata['source_slice_size']; a phantom may be of any size; None: they share
        no square shape), else source_slice_size (builds from before it was recorded)."""
        return (metadata or {}).get("source_slice_size", self.source_slice_size)

    def group(self, example: dict) -> int:
        """The example's group label (an index into groups), NO_GROUP without groups."""
        return int(self._field(example, self.group_field)) if self.groups else NO_GROUP


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


DATASETS = {dataset.name: dataset for dataset in (
    Dataset("brats2017", Brats2017, id_fields=("case_id", "slice_index"),
            group_field="grade", groups=GRADES, source_slice_size=240, phantom="brats",
            build_command=True),
    # INbreast: one example per mass, so a file gives several (its id alone is not unique).
    # Its crops of 4084x3328 and 3328x2560 mammograms have no volume geometry. It has no
    # groups: the BI-RADS category is stored, as free text ('birads'), but not used as one.
    Dataset("inbreast", Inbreast, id_fields=("file_id", POSITION), phantom="inbreast",
            build_command=True),
    # Written by launch.py --mode=synthesize: each pair keeps the id and grade of its source;
    # its sample tells apart the K images of one mask.
    Dataset("synthetic_pairs", SyntheticPairs, id_fields=("source_id", "sample"),
            group_field="grade", groups=GRADES),
)}
BUILDABLE = tuple(name for name, dataset in DATASETS.items() if dataset.build_command)


def get(name: str) -> Dataset:
    """The facts of dataset `name`; generic ones (ids are positions in the split, no groups)
    for a dataset not listed here."""
    return DATASETS.get(name) or Dataset(name)
