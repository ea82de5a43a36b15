"""TFDS builder ``brats2017``: paired T2 slice + tumour ROI from the BRATS 2017 training set.

Paper section 2.1, as implemented here:

* Input: the manual dir holds ``HGG/<case>/<case>_<modality>.nii.gz`` and
  ``<case>_seg.nii.gz`` (and the same under ``LGG/``), as in the BRATS 2017 training
  release. The modality is ``t2`` by default (config field ``modality``: t1, t1ce, t2,
  flair). ``.nii`` files are accepted too.
* Slices: axial slices ``vol[:, :, k]`` with ``k`` a zero-based index into nibabel's third
  array axis, no transpose or flip. ``paper`` config: HGG k = 90, 100 and LGG k = 90, 95,
  100, 105. ``all_tumour_slices`` config: every axial slice whose seg has tumour.
  A requested slice whose seg has no tumour is excluded (paper Figure 1b); exclusions are
  logged and counted in ``info.metadata``. A requested index outside the volume is a
  ``BadInputError`` naming the file (pass ``Brats2017Config(hgg_slices=..., lgg_slices=...)``
  for volumes with fewer than 155 slices).
* ROI = seg label 1, 2 or 4 (``TUMOUR_LABELS`` together: whole tumour).
* Bad data, each a ``BadInputError`` naming the file (skipped, and listed, with
  ``skip_bad``): a seg label outside {0, 1, 2, 4} (negative ones included); a NaN or Inf
  ANYWHERE in the modality volume (a volume with one is not trusted, even if the slices
  taken are finite); a taken slice (its seg has tumour) with no positive intensity, which
  would be a black image paired with a tumour mask (an all-zero volume fails here, on its
  first such slice; tumour-free slices are not checked, they are excluded anyway).
* Size: 240x240 -> 256x256 by centred ZERO PADDING (8 px each side), not resizing, so the
  pixels and the ROI are untouched and aligned. Generic HxW: padding if both sides are
  <= 256, otherwise pad to a square and resize (image bilinear, ROI nearest neighbour);
  see :func:`data_builders.common.fit_to_size`. To map a 256x256 output back onto a
  240x240 volume slice take ``[8:248, 8:248]`` and write it at ``vol[:, :, slice_index]``
  with the stored ``affine``.
* Intensities: max-normalised PER SLICE to [0, 1] (slice / slice max), float32.
* Grade balancing (config field ``balance_grades``; on in ``paper``): after every case has
  been read and checked (so cases skipped with ``skip_bad`` are out) and the tumour-free
  slices are excluded, the grade with more slices is sampled down, at the slice level and
  without replacement, to the slice count of the other grade
  (:func:`data_builders.common.balance_classes`, seed ``split_seed``); the split below then
  uses only patients that kept at least one slice. This is OUR READING of the paper's
  numbers: "272 pairs of HGG and LGG images" and a synthesis split of 190 + 190 train /
  82 + 82 test, i.e. equal grades, 7:3. On the real release HGG gives up to 2 x 210 slices
  and LGG up to 4 x 75 = 300 (272 with tumour, then), so HGG is the grade sampled down.
  Because the split is by patient the per-grade train share is only roughly 0.7.
* Split: 7:3 train/test by patient, separately within HGG and within LGG (so both grades
  are on both sides), sorted patient ids then a seeded permutation
  (:func:`data_builders.common.patient_split`). Patient id = case name without its
  trailing ``_<digits>`` (``Brats17_TCIA_105_1`` -> ``Brats17_TCIA_105``), so several
  acquisitions of one patient can never straddle the split.
* Healthy slices (config field ``healthy_slices``; none by default, so the default builds
  are unchanged): these zero-based axial indices of every case, where the seg has no
  tumour voxel and the slice some positive intensity, normalised and padded as above with
  an all-zero ROI, go to the splits ``train_healthy`` and ``test_healthy`` by the same
  patient split (the patients of ``train`` and ``test``): contexts for drawing tumours
  into, and truth for healthy inpainting. An index outside a volume is a BadInputError.
* Geometry: ``info.metadata['source_slice_size']`` is the in-plane side of the volumes the
  examples come from (240 for the release; a phantom may be of any size), None if they do
  not all share one square shape: with the stored ``affine`` and ``slice_index`` it places
  a stored slice in the world (data_builders.registry: ``Dataset.slice_size``).
* Counts: ``info.metadata['examples']`` = ``{split: {grade: n}}`` of the examples written
  (and, with balancing, ``info.metadata['balance']``: slices per grade before and after);
  the build summary prints both.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Iterator, Sequence

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from data_builders import common
from data_builders.common import BadInputError

GRADES = ("HGG", "LGG")
MODALITIES = ("t1", "t1ce", "t2", "flair")
TUMOUR_LABELS = (1, 2, 4)
SEG_LABELS = (0, *TUMOUR_LABELS)
PAPER_HGG_SLICES = (90, 100)
PAPER_LGG_SLICES = (90, 95, 100, 105)

_MANUAL_DOWNLOAD_INSTRUCTIONS = """\
BRATS 2017 is a gated download. Register for the MICCAI BraTS 2017 challenge and request
the training data through the CBICA Image Processing Portal (CBICA, University of
Pennsylvania). Unpack the training archive into the manual dir so that it reads:

  <manual_dir>/HGG/Brats17_<...>_1/Brats17_<...>_1_t2.nii.gz
  <manual_dir>/HGG/Brats17_<...>_1/Brats17_<...>_1_seg.nii.gz   (and _t1, _t1ce, _flair)
  <manual_dir>/LGG/Brats17_<...>_1/...

(One extra top-level folder, e.g. MICCAI_BraTS17_Data_Training/, is accepted.)
Then: python -m data_builders brats2017 --manual_dir=<manual_dir> --data_dir=<data_dir>
Without the real data, python -m data_builders.phantom brats --out=<manual_dir> writes a
synthetic stand-in with the same layout.
"""


@dataclasses.dataclass(eq=False)
class Brats2017Config(tfds.core.BuilderConfig):
    """Options of the brats2017 builder.

    Attributes:
      modality: which MR sequence is the image: t1, t1ce, t2 (paper) or flair.
      hgg_slices: zero-based axial indices taken from HGG volumes; None = every slice with
        tumour.
      lgg_slices: the same for LGG volumes.
      skip_bad: skip unreadable/inconsistent cases (listed in ``info.metadata['skipped']``)
        instead of failing the build.
      image_size: output side length.
      train_fraction, split_seed: the patient-level split.
      balance_grades: sample the grade with more (tumour) slices down to the other grade's
        slice count before the split (seed ``split_seed``); see the module docstring.
      healthy_slices: zero-based axial indices whose tumour-free slices are written to
        the splits train_healthy and test_healthy; () for none.
    """

    modality: str = "t2"
    hgg_slices: tuple[int, ...] | None = PAPER_HGG_SLICES
    lgg_slices: tuple[int, ...] | None = PAPER_LGG_SLICES
    skip_bad: bool = False
    image_size: int = common.IMAGE_SIZE
    train_fraction: float = common.TRAIN_FRACTION
    split_seed: int = common.SPLIT_SEED
    balance_grades: bool = False
    healthy_slices: tuple[int, ...] = ()

    def slices_for(self, grade: str) -> tuple[int, ...] | None:
        return self.hgg_slices if grade == "HGG" else self.lgg_slices


def tumour(seg: np.ndarray) -> np.ndarray:
    """The whole-tumour ROI of a seg array: a label selection (labels are checked to be in
    SEG_LABELS), so no threshold."""
    return np.isin(seg, TUMOUR_LABELS)


def patient_of(case_id: str) -> str:
    """``Brats17_TCIA_105_1`` -> ``Brats17_TCIA_105`` (drops a trailing ``_<digits>``)."""
    return re.sub(r"_\d+$", "", case_id) or case_id


def _nifti_path(case_dir: epath.Path, case_id: str, suffix: str) -> epath.Path:
    for ext in (".nii.gz", ".nii"):
        p = case_dir / f"{case_id}_{suffix}{ext}"
        if p.exists():
            return p
    raise BadInputError(
        case_dir / f"{case_id}_{suffix}.nii.gz", f"missing {suffix} file of case {case_id}"
    )


def load_nifti(path: os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Returns (3-D array, 4x4 affine); BadInputError naming ``path`` if unreadable."""
    import nibabel as nib  # pylint: disable=g-import-not-at-top

    path = os.fspath(path)
    try:
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
        affine = np.asarray(img.affine, np.float32)
    except Exception as e:  # nibabel raises many types (ImageFileError, EOFError, zlib.error...)
        raise BadInputError(path, f"cannot read NIfTI ({type(e).__name__}: {e})") from e
    if data.ndim != 3:
        raise BadInputError(path, f"expected a 3-D volume, got shape {data.shape}")
    if not np.all(np.isfinite(affine)):
        raise BadInputError(path, "non-finite affine")
    return data, affine


def find_cases(manual_dir: epath.Path) -> list[tuple[str, str, epath.Path]]:
    """Lists ``(grade, case_id, case_dir)`` under ``manual_dir``; BadInputError if none."""
    manual_dir = epath.Path(manual_dir)
    if not manual_dir.is_dir():
        raise BadInputError(manual_dir, "manual dir does not exist")
    root = manual_dir
    if not any((root / g).is_dir() for g in GRADES):
        subs = [
            p for p in manual_dir.iterdir() if p.is_dir() and any((p / g).is_dir() for g in GRADES)
        ]
        if len(subs) == 1:
            root = subs[0]
    cases = []
    for grade in GRADES:
        gdir = root / grade
        if not gdir.is_dir():
            continue
        for case_dir in sorted(gdir.iterdir()):
            if case_dir.is_dir():
                cases.append((grade, case_dir.name, case_dir))
    if not cases:
        raise BadInputError(
            manual_dir,
            "no BRATS cases found: expected HGG/<case>/<case>_t2.nii.gz and "
            "<case>_seg.nii.gz (and/or the same under LGG/)\n" + _MANUAL_DOWNLOAD_INSTRUCTIONS,
        )
    return cases


class Brats2017(common.SkipBadBuilderMixin, tfds.core.GeneratorBasedBuilder):
    """BRATS 2017 T2 axial slices with whole-tumour ROI (paper section 2.1)."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release.",
        "1.1.0": "balance_grades (on in paper); examples per split and grade in metadata.",
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS
    BUILDER_CONFIGS = [
        Brats2017Config(
            name="paper",
            balance_grades=True,
            description=(
                "T2; HGG slices 90, 100; LGG slices 90, 95, 100, 105 (paper 2.1); grades "
                "balanced at the slice level (our reading of 272 + 272)."
            ),
        ),
        Brats2017Config(
            name="paper_healthy",
            balance_grades=True,
            healthy_slices=(60, 70, 80, 90, 100, 110, 120),
            description=(
                "paper, plus the tumour-free ones of axial slices 60, 70, ..., 120 of every "
                "case in the splits train_healthy and test_healthy."
            ),
        ),
        Brats2017Config(
            name="all_tumour_slices",
            hgg_slices=None,
            lgg_slices=None,
            description="T2; every axial slice whose segmentation has tumour.",
        ),
    ]
    DEFAULT_CONFIG_NAME = "paper"

    def __init__(self, *, skip_bad: bool | None = None, file_format=None, **kwargs):
        """Like any tfds builder; ``skip_bad`` overrides the config's field.

        ``file_format`` defaults to array_record (readable without TensorFlow).
        """
        super().__init__(skip_bad=skip_bad, file_format=file_format, **kwargs)
        self._excluded_count = 0
        self._slice_shapes: set[tuple[int, int]] = set()  # in-plane shapes of the volumes read

    def _info(self) -> tfds.core.DatasetInfo:
        s = self.builder_config.image_size
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    **common.pair_features(s),
                    "case_id": tfds.features.Text(),
                    "grade": tfds.features.ClassLabel(names=list(GRADES)),
                    "slice_index": np.int32,
                    "affine": tfds.features.Tensor(shape=(4, 4), dtype=np.float32),
                }
            ),
            supervised_keys=("image", "roi"),
            homepage="https://www.med.upenn.edu/sbia/brats2017.html",
            citation="Menze et al., IEEE TMI 2015; Bakas et al., Scientific Data 2017.",
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        cfg = self.builder_config
        if cfg.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {cfg.modality!r}")
        self._log = common.SkipLog(self._skip_bad)
        self._excluded_count = 0
        self._slice_shapes = set()
        cases = find_cases(self._manual_dir(dl_manager))
        md = self.info.metadata
        md["skipped"] = self._log.skipped
        # Tumour-free requested slices ("case/k"); with all_tumour_slices only the count.
        md["excluded_slices"] = self._log.excluded
        md["excluded_slice_count"] = 0
        md["modality"] = cfg.modality
        md["hgg_slices"] = None if cfg.hgg_slices is None else list(cfg.hgg_slices)
        md["lgg_slices"] = None if cfg.lgg_slices is None else list(cfg.lgg_slices)
        md["resize"] = (
            "centred zero padding to 256 (240x240 -> 8 px per side); resize only if larger"
        )
        md["normalisation"] = "per-slice max normalisation to [0, 1]"
        md["examples"] = {s: {g: 0 for g in GRADES} for s in ("train", "test")}
        md["source_slice_size"] = None
        slices_of: dict[str, list[int]] | None = None  # case_id -> kept slices, if balanced
        if cfg.balance_grades:
            slices_of = self._balanced_slices(cases)
            cases = [c for c in cases if slices_of.get(c[1])]
            md["excluded_slice_count"] = self._excluded_count
        grade_of_patient: dict[str, str] = {}
        for grade, case_id, _ in cases:
            grade_of_patient.setdefault(patient_of(case_id), grade)
        split_of: dict[str, str] = {}
        for grade in GRADES:
            split_of.update(
                common.patient_split(
                    [p for p, g in grade_of_patient.items() if g == grade],
                    cfg.train_fraction,
                    cfg.split_seed,
                )
            )
        by_split = {"train": [], "test": []}
        for c in cases:
            by_split[split_of[patient_of(c[1])]].append(c)
        md["cases"] = {s: len(v) for s, v in by_split.items()}
        common.log.info(
            "brats2017: %d cases (%d train, %d test)",
            len(cases),
            len(by_split["train"]),
            len(by_split["test"]),
        )
        splits = {s: self._generate_examples(s, v, slices_of) for s, v in by_split.items()}
        if cfg.healthy_slices:
            md["healthy_slices"] = list(cfg.healthy_slices)
            for s, v in by_split.items():
                md["examples"][f"{s}_healthy"] = {g: 0 for g in GRADES}
                splits[f"{s}_healthy"] = self._generate_healthy(f"{s}_healthy", v)
        return splits

    def _balanced_slices(self, cases: Sequence[tuple[str, str, epath.Path]]) -> dict:
        """``{case_id: [k, ...]}`` after excluding tumour-free slices and balancing grades.

        Reads and checks each case (:meth:`tumour_slices`; a bad one is skipped with
        ``skip_bad`` BEFORE balancing); records the counts in ``info.metadata['balance']``.
        """
        cfg = self.builder_config
        pool: dict[str, list[tuple[str, int]]] = {g: [] for g in GRADES}
        for grade, case_id, case_dir in cases:
            kept = self._log.call(self.tumour_slices, grade, case_id, case_dir)
            pool[grade] += [(case_id, k) for k in kept or ()]
        present = {g: v for g, v in pool.items() if v}
        if len(present) < len(GRADES):
            common.log.warning("brats2017: a grade has no slices; nothing to balance")
        kept_pool = common.balance_classes(present, cfg.split_seed)
        out: dict[str, list[int]] = {}
        for items in kept_pool.values():
            for case_id, k in items:
                out.setdefault(case_id, []).append(k)
        self.info.metadata["balance"] = {
            "slices_before": {g: len(v) for g, v in pool.items()},
            "slices_after": {g: len(kept_pool.get(g, ())) for g in GRADES},
            "seed": cfg.split_seed,
            "how": "larger grade sampled down at the slice level before the patient split",
        }
        common.log.info(
            "brats2017: balanced grades %s -> %s",
            self.info.metadata["balance"]["slices_before"],
            self.info.metadata["balance"]["slices_after"],
        )
        return out

    def _generate_examples(
        self,
        split: str,
        cases: Sequence[tuple[str, str, epath.Path]],
        slices_of: dict[str, list[int]] | None = None,
    ) -> Iterator:
        counts = self.info.metadata["examples"][split]
        for grade, case_id, case_dir in cases:
            only = None if slices_of is None else slices_of[case_id]
            examples = self._log.call(self.case_examples, grade, case_id, case_dir, only)
            common.log.info("brats2017: %s/%s -> %d slices", grade, case_id, len(examples or ()))
            counts[grade] += len(examples or ())
            sides = {side for shape in self._slice_shapes for side in shape}
            self.info.metadata["source_slice_size"] = sides.pop() if len(sides) == 1 else None
            if slices_of is None:
                self.info.metadata["excluded_slice_count"] = self._excluded_count
            yield from examples or ()

    def _generate_healthy(self, split: str, cases: Sequence[tuple[str, str, epath.Path]]
                          ) -> Iterator:
        counts = self.info.metadata["examples"][split]
        for grade, case_id, case_dir in cases:
            examples = self._log.call(self.healthy_examples, grade, case_id, case_dir)
            counts[grade] += len(examples or ())
            yield from examples or ()

    def _requested(self, grade: str, shape: tuple, img_path: epath.Path) -> tuple[list, bool]:
        """(slice indices to look at, whether they were requested explicitly)."""
        depth = shape[2]
        wanted = self.builder_config.slices_for(grade)
        if wanted is None:
            return list(range(depth)), False
        bad = [k for k in wanted if not 0 <= k < depth]
        if bad:
            raise BadInputError(
                img_path,
                f"slice indices {bad} out of range for a volume of "
                f"shape {tuple(shape)} ({depth} axial slices); use "
                "Brats2017Config(hgg_slices=..., lgg_slices=...) for smaller volumes",
            )
        return list(wanted), True

    def _tumour_split(self, seg, img_path, grade) -> tuple[list[int], list[int], bool]:
        """(requested slices whose seg has tumour, requested slices without, whether the
        slices were requested explicitly)."""
        has_tumour = tumour(seg).reshape(-1, seg.shape[2]).any(axis=0)
        indices, explicit = self._requested(grade, seg.shape, img_path)
        return ([k for k in indices if has_tumour[k]], [k for k in indices if not has_tumour[k]],
                explicit)

    def _load_seg(self, img_path, seg_path, img_shape) -> np.ndarray:
        seg, _ = load_nifti(seg_path)
        if seg.shape != tuple(img_shape):
            raise BadInputError(
                seg_path,
                f"seg shape {seg.shape} differs from image shape {tuple(img_shape)} of "
                f"{img_path}",
            )
        bad = ~np.isin(seg, SEG_LABELS)
        if bad.any():
            raise BadInputError(
                seg_path, f"labels {np.unique(seg[bad])[:10].tolist()} outside {{0, 1, 2, 4}}"
            )
        return seg

    def _read_case(self, grade, case_id, case_dir, record: bool = True) -> tuple:
        """(volume, affine, seg, kept slice indices) of one case, every check passed.

        Checks: both files readable, same shape, seg labels in {0, 1, 2, 4}, no NaN/Inf
        anywhere in the volume, and some positive intensity in every kept slice; else a
        BadInputError naming the file. ``record``: count/log the tumour-free requested
        slices (only once every check passed, so a skipped case excludes nothing).
        """
        img_path = _nifti_path(case_dir, case_id, self.builder_config.modality)
        seg_path = _nifti_path(case_dir, case_id, "seg")
        vol, affine = load_nifti(img_path)
        common.check_finite(img_path, vol, "the volume")
        seg = self._load_seg(img_path, seg_path, vol.shape)
        kept, excluded, explicit = self._tumour_split(seg, img_path, grade)
        for k in kept:
            common.check_not_blank(img_path, vol[:, :, k], f"axial slice {k}")
        if record:
            self._excluded_count += len(excluded)
            for k in excluded if explicit else ():
                self._log.exclude(f"{case_id}/{k}", "no tumour in seg slice")
        return vol, affine, seg, kept

    def tumour_slices(self, grade: str, case_id: str, case_dir: epath.Path) -> list[int]:
        """The requested slices of one case whose seg has tumour, after every check of
        :meth:`_read_case` (so balancing only sees usable cases); BadInputError if bad."""
        return self._read_case(grade, case_id, case_dir)[3]

    def healthy_examples(self, grade: str, case_id: str, case_dir: epath.Path) -> list:
        """The tumour-free, not blank slices of ``healthy_slices`` of one case, as
        ``[(key, features), ...]`` with an all-zero ROI; BadInputError if the case is bad
        or an index lies outside its volume."""
        cfg = self.builder_config
        vol, affine, seg, _ = self._read_case(grade, case_id, case_dir, record=False)
        img_path = _nifti_path(case_dir, case_id, cfg.modality)
        bad = [k for k in cfg.healthy_slices if not 0 <= k < vol.shape[2]]
        if bad:
            raise BadInputError(img_path, f"healthy slice indices {bad} out of range for a "
                                f"volume of shape {tuple(vol.shape)}")
        healthy = [k for k in cfg.healthy_slices
                   if not tumour(seg[:, :, k]).any() and vol[:, :, k].max() > 0]
        return [self._example(vol, affine, np.zeros(vol.shape[:2], bool), case_id, grade, k)
                for k in healthy]

    def _example(self, vol, affine, roi, case_id: str, grade: str, k: int) -> tuple:
        """(key, features) of axial slice k with its ROI, normalised and brought to size."""
        image = common.max_normalise(vol[:, :, k])
        image, roi = common.fit_to_size(image, roi, self.builder_config.image_size)
        return (f"{case_id}_{k:03d}",
                {"image": common.as_channel(image), "roi": common.as_channel(roi),
                 "patient_id": patient_of(case_id), "case_id": case_id, "grade": grade,
                 "slice_index": np.int32(k), "affine": affine})

    def case_examples(
        self,
        grade: str,
        case_id: str,
        case_dir: epath.Path,
        only: Sequence[int] | None = None,
    ) -> list:
        """All examples of one case as ``[(key, features), ...]``; BadInputError if bad.

        ``only``: take exactly these slice indices (already chosen by
        :meth:`tumour_slices`, which recorded the exclusions) instead of the config's
        tumour slices.
        """
        vol, affine, seg, indices = self._read_case(grade, case_id, case_dir, only is None)
        self._slice_shapes.add(tuple(int(n) for n in vol.shape[:2]))
        if only is not None:
            indices = list(only)
        return [self._example(vol, affine, tumour(seg[:, :, k]), case_id, grade, k)
                for k in indices]
