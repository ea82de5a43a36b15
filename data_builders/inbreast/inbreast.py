"""TFDS builder ``inbreast``: 256x256 mammogram crops around each mass + mass ROI.

Paper section 2.1, as implemented here:

* Input: the manual dir holds ``AllDICOMs/*.dcm`` (names
  ``<fileid>_<patienthash>_MG_<L|R>_<CC|ML>_ANON.dcm``), ``AllXML/<fileid>.xml`` (OsiriX
  plist, ``Images[0].ROIs[*]`` with ``Name`` and ``Point_px`` strings ``"(x, y)"``, x =
  column) and ``INbreast.csv`` (semicolon separated; columns include ``Laterality``,
  ``View``, ``File Name`` and ``Bi-Rads``).
* Masses only: ROIs named (case-insensitive, stripped) ``Mass``, ``Spiculated Region`` or
  ``Espiculated Region`` with 3 or more points. ROIs with 1-2 points are single pixels,
  never masses (they are counted in ``info.metadata['ignored_point_rois']``); other names
  (Calcification, Cluster, ...) are ignored. Images without an XML, or without a mass, give
  no example.
* ROI mask: every mass polygon of the image filled (PIL ``ImageDraw.polygon``, boundary
  included) at the DICOM's own size; an example's ROI is that union mask cropped, so a
  neighbouring mass inside the window is labelled too.
* One example per mass: a 256x256 window centred on the mass's bounding-box centre,
  shifted to stay inside the image (images smaller than the window are zero padded).
  A mass larger than 256 px in either dimension: a square window of side
  ``ceil(1.2 * max(bbox_h, bbox_w))`` (10% margin per side) around the same centre,
  shifted likewise, then resized to 256 (image bilinear, ROI nearest neighbour, so it
  stays binary).
* A mass ROI partly outside the image is clipped to it and kept, but never silently: each
  is logged and listed (XML path and reason) in ``info.metadata['clipped_rois']`` and the
  build summary. A mass ROI wholly outside, or filling no pixel, is a ``BadInputError``.
* Pixels: decoded by pydicom (uncompressed, the compressed transfer syntaxes pydicom
  decodes natively, e.g. RLE Lossless, and, through the pylibjpeg and pylibjpeg-libjpeg
  plugins of requirements.txt, JPEG, JPEG Lossless and JPEG-LS), Rescale Slope/Intercept
  applied, MONOCHROME1 inverted (``2**BitsStored - 1 - value``), then max-normalised to
  [0, 1] OVER THE CROP (crop / crop max, as the paper crops first and then normalises),
  float32.
* Split: 7:3 train/test by patient (the hash in the file name), over the patients that
  have at least one mass; sorted ids then a seeded permutation.
* Healthy crops (config field ``healthy_crops``; 0 by default, so the default builds are
  unchanged): from every mammogram without a mass ROI (no XML, or calcifications only),
  up to that many windows of the mass crops' size at the native resolution, taken from a
  grid of stride half a window among those whose pixels are at least ``HEALTHY_COVERAGE``
  breast (above ``BREAST_THRESHOLD`` of the image's maximum), chosen by a generator seeded
  by ``split_seed`` and the file id; max-normalised over the crop like the mass crops,
  with an all-zero ROI. They go to ``train_healthy`` and ``test_healthy``: a patient of
  the mass split keeps its side, the patients without any mass are split 7:3 among
  themselves with the same seed. Contexts for drawing masses into, and truth for healthy
  inpainting. A mammogram with no such window gives none (counted in
  ``info.metadata['healthy_images_without_room']``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import plistlib
import re
from typing import Iterator, Sequence

from etils import epath
import numpy as np
from PIL import Image, ImageDraw
import tensorflow_datasets as tfds

from data_builders import common
from data_builders.common import BadInputError
from fproi_jax.roi import binarise

MASS_NAMES = ("mass", "spiculated region", "espiculated region")
FILE_RE = re.compile(
    r"^(?P<file_id>[^_]+)_(?P<patient>[^_]+)_MG_(?P<lat>[LR])_(?P<view>CC|MLO?)_ANON$",
    re.IGNORECASE,
)
POINT_RE = re.compile(r"^\s*\(\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*(?:,\s*[-+0-9.eE]+\s*)?\)\s*$")
LARGE_MARGIN = 0.1
BREAST_THRESHOLD = 0.05   # breast pixels: above this share of the mammogram's maximum
HEALTHY_COVERAGE = 0.9    # share of a healthy crop's pixels that must be breast

_MANUAL_DOWNLOAD_INSTRUCTIONS = """\
INbreast is distributed by its authors (INESC TEC / Centro Hospitalar de S. Joao, Porto;
Moreira et al., Academic Radiology 2012) on request: ask the authors for access and
accept their terms. Unpack it into the manual dir so that it reads:

  <manual_dir>/AllDICOMs/<fileid>_<patienthash>_MG_<L|R>_<CC|ML>_ANON.dcm
  <manual_dir>/AllXML/<fileid>.xml
  <manual_dir>/INbreast.csv

(One extra top-level folder, e.g. INbreast Release 1.0/, is accepted.)
Then: python -m data_builders inbreast --manual_dir=<manual_dir> --data_dir=<data_dir>
Without the real data, python -m data_builders.phantom inbreast --out=<manual_dir> writes
a synthetic stand-in with the same layout.
"""


@dataclasses.dataclass(eq=False)
class InbreastConfig(tfds.core.BuilderConfig):
    """Options of the inbreast builder (crop size, skip_bad, split, healthy crops)."""

    skip_bad: bool = False
    healthy_crops: int = 0
    image_size: int = common.IMAGE_SIZE
    train_fraction: float = common.TRAIN_FRACTION
    split_seed: int = common.SPLIT_SEED


@dataclasses.dataclass
class Mass:
    name: str
    points: np.ndarray  # (n, 2) float, columns (x, y) = (column, row)


@dataclasses.dataclass
class ImageRecord:
    dcm: epath.Path
    xml: epath.Path | None
    file_id: str
    patient_id: str
    laterality: str
    view: str
    birads: str
    masses: list[Mass] = dataclasses.field(default_factory=list)


def parse_file_name(path: os.PathLike) -> dict[str, str]:
    """``<fileid>_<hash>_MG_<L|R>_<CC|ML>_ANON.dcm`` -> file_id, patient, lat, view."""
    stem = os.path.basename(os.fspath(path))
    stem = stem[:-4] if stem.lower().endswith(".dcm") else stem
    m = FILE_RE.match(stem)
    if not m:
        raise BadInputError(
            path, "file name does not match <fileid>_<patienthash>_MG_<L|R>_<CC|ML>_ANON.dcm"
        )
    d = m.groupdict()
    d["view"] = "MLO" if d["view"].upper().startswith("ML") else "CC"
    d["lat"] = d["lat"].upper()
    return d


def read_csv(path: os.PathLike) -> dict[str, dict[str, str]]:
    """INbreast.csv -> {file_id: {column: value}} (stripped, header names lower-cased)."""
    path = epath.Path(path)
    if not path.exists():
        raise BadInputError(
            path, "missing INbreast.csv (semicolon-separated table with 'File Name' and 'Bi-Rads')"
        )
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=";")]
    rows = [[c.strip() for c in r] for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise BadInputError(path, "empty table")
    header = [h.lower() for h in rows[0]]
    for col in ("file name", "bi-rads"):
        if col not in header:
            raise BadInputError(path, f"no column {col!r} in header {rows[0]}")
    fi = header.index("file name")
    table = {}
    for r in rows[1:]:
        r = r + [""] * (len(header) - len(r))
        if r[fi]:
            table[r[fi]] = dict(zip(header, r))
    return table


def parse_xml(path: os.PathLike, other_names: dict[str, int] | None = None) -> list[Mass]:
    """Mass ROIs of an OsiriX plist (``Images[0].ROIs``).

    Returns every ROI whose name is a mass name, including those with <= 2 points (the
    caller drops those). Names of the other ROIs are counted into ``other_names``.
    Raises BadInputError naming the file on malformed content.
    """
    path = epath.Path(path)
    try:
        with path.open("rb") as f:
            plist = plistlib.load(f)
    except Exception as e:
        raise BadInputError(path, f"cannot parse XML plist ({type(e).__name__}: {e})") from e
    try:
        rois = plist["Images"][0]["ROIs"]
    except (KeyError, IndexError, TypeError) as e:
        raise BadInputError(path, f"no Images[0].ROIs in plist ({type(e).__name__}: {e})") from e
    masses = []
    for i, roi in enumerate(rois):
        if not isinstance(roi, dict) or "Name" not in roi:
            raise BadInputError(path, f"ROI {i} has no Name")
        name = str(roi["Name"]).strip()
        if name.lower() not in MASS_NAMES:
            if other_names is not None:
                other_names[name] = other_names.get(name, 0) + 1
            continue
        pts = []
        for s in roi.get("Point_px", []):
            m = POINT_RE.match(str(s))
            if not m:
                raise BadInputError(
                    path, f"ROI {i} ({name}): malformed point {s!r}, expected '(x, y)'"
                )
            pts.append((float(m.group(1)), float(m.group(2))))
        arr = np.asarray(pts, np.float64).reshape(-1, 2)
        if not np.all(np.isfinite(arr)):
            raise BadInputError(path, f"ROI {i} ({name}): non-finite point")
        masses.append(Mass(name, arr))
    return masses


def read_dicom(path: os.PathLike) -> np.ndarray:
    """Pixel array as float32 (rescaled; MONOCHROME1 inverted); BadInputError if bad."""
    import pydicom  # pylint: disable=g-import-not-at-top

    path = os.fspath(path)
    try:
        ds = pydicom.dcmread(path)
        arr = ds.pixel_array
    except Exception as e:
        raise BadInputError(path, f"cannot read DICOM pixels ({type(e).__name__}: {e})") from e
    if arr.ndim != 2:
        raise BadInputError(
            path, f"expected one 2-D greyscale frame, got pixel array shape {arr.shape}"
        )
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    x = arr.astype(np.float32)
    if photometric == "MONOCHROME1":
        bits = int(ds.get("BitsStored", 16))
        x = float(2**bits - 1) - x
    elif photometric != "MONOCHROME2":
        raise BadInputError(path, f"unsupported PhotometricInterpretation {photometric}")
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    if slope != 1 or intercept != 0:
        x = x * slope + intercept
    return x


def polygon_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Filled polygon (x = column, y = row), boundary included, as a bool (rows, cols) mask."""
    img = Image.new("L", (shape[1], shape[0]), 0)
    ImageDraw.Draw(img).polygon([(float(x), float(y)) for x, y in points], fill=1, outline=1)
    return np.asarray(img, dtype=bool)


def _window(arr: np.ndarray, r0: int, c0: int, side: int) -> np.ndarray:
    """arr[r0:r0+side, c0:c0+side] with zeros where the window leaves the array."""
    out = np.zeros((side, side), arr.dtype)
    h, w = arr.shape
    rs, re_ = max(r0, 0), min(r0 + side, h)
    cs, ce = max(c0, 0), min(c0 + side, w)
    out[rs - r0 : re_ - r0, cs - c0 : ce - c0] = arr[rs:re_, cs:ce]
    return out


def _start(center: float, side: int, extent: int) -> int:
    """Window start centred on ``center``, shifted to stay inside [0, extent)."""
    s = int(round(center - side / 2.0))
    if side >= extent:
        return -((side - extent) // 2)  # centred zero padding
    return min(max(s, 0), extent - side)


def crop_lesion(
    image: np.ndarray, roi: np.ndarray, lesion: np.ndarray, size: int = common.IMAGE_SIZE
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]]:
    """Crops (image, roi) around the bounding box of the bool mask ``lesion``.

    Returns (float32 image max-normalised over the crop, uint8 ROI, (row0, col0, side)) with
    image/ROI of shape (size, size). See the module docstring for the rule.
    """
    rows, cols = np.nonzero(lesion)
    if rows.size == 0:
        raise ValueError("empty lesion mask")
    bh, bw = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    cr, cc = (rows.min() + rows.max()) / 2.0 + 0.5, (cols.min() + cols.max()) / 2.0 + 0.5
    side = size if max(bh, bw) <= size else int(math.ceil((1 + 2 * LARGE_MARGIN) * max(bh, bw)))
    r0 = _start(cr, side, image.shape[0])
    c0 = _start(cc, side, image.shape[1])
    img = _window(image, r0, c0, side)
    r = _window(binarise(roi).astype(np.uint8), r0, c0, side)
    img = common.max_normalise(img)
    if side != size:
        img, r = common.resize_pair(img, r, size)
        img = np.clip(img, 0.0, 1.0)
    return img, r, (r0, c0, side)


def healthy_windows(image: np.ndarray, size: int, count: int, rng: np.random.Generator
                    ) -> list[tuple[int, int]]:
    """Up to ``count`` distinct (row0, col0) of size x size windows inside ``image`` whose
    pixels are at least HEALTHY_COVERAGE breast, from a grid of stride size // 2, in a
    random order of ``rng``; [] if the image is smaller than the window or none qualifies."""
    rows, cols = image.shape
    if rows < size or cols < size:
        return []
    breast = (image > BREAST_THRESHOLD * image.max()).astype(np.float64)
    # Summed-area table: the breast pixels of any window in O(1).
    table = np.pad(breast.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    stride = max(1, size // 2)
    starts = [(r, c) for r in range(0, rows - size + 1, stride)
              for c in range(0, cols - size + 1, stride)]
    covered = [(r, c) for r, c in starts
               if table[r + size, c + size] - table[r, c + size] - table[r + size, c]
               + table[r, c] >= HEALTHY_COVERAGE * size * size]
    order = rng.permutation(len(covered))[:count]
    return [covered[k] for k in sorted(order)]


def find_layout(manual_dir: os.PathLike) -> epath.Path:
    """The folder holding AllDICOMs/ (the manual dir or its only such subfolder)."""
    manual_dir = epath.Path(manual_dir)
    if not manual_dir.is_dir():
        raise BadInputError(manual_dir, "manual dir does not exist")
    if (manual_dir / "AllDICOMs").is_dir():
        return manual_dir
    subs = [p for p in manual_dir.iterdir() if p.is_dir() and (p / "AllDICOMs").is_dir()]
    if len(subs) == 1:
        return subs[0]
    raise BadInputError(
        manual_dir,
        "no AllDICOMs/ folder: expected AllDICOMs/*.dcm, AllXML/*.xml "
        "and INbreast.csv\n" + _MANUAL_DOWNLOAD_INSTRUCTIONS,
    )


class Inbreast(common.SkipBadBuilderMixin, tfds.core.GeneratorBasedBuilder):
    """INbreast mass crops with mass ROI (paper section 2.1)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS
    BUILDER_CONFIGS = [
        InbreastConfig(name="paper", description="256x256 crop per mass (paper 2.1)."),
        InbreastConfig(
            name="paper_healthy",
            healthy_crops=4,
            description="paper, plus up to 4 healthy 256x256 breast crops per mammogram "
            "without a mass in the splits train_healthy and test_healthy.",
        ),
    ]
    DEFAULT_CONFIG_NAME = "paper"

    def _info(self) -> tfds.core.DatasetInfo:
        s = self.builder_config.image_size
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    **common.pair_features(s),
                    "file_id": tfds.features.Text(),
                    "laterality": tfds.features.Text(),
                    "view": tfds.features.Text(),
                    "birads": tfds.features.Text(),
                }
            ),
            supervised_keys=("image", "roi"),
            homepage="https://doi.org/10.1016/j.acra.2011.09.014",
            citation="Moreira et al., INbreast: toward a full-field digital mammographic "
            "database. Academic Radiology 19(2), 2012.",
            metadata=tfds.core.MetadataDict(),
        )

    def scan(self, root: epath.Path) -> tuple[list[ImageRecord], list[ImageRecord]]:
        """Reads names, CSV and XMLs; returns (the images that have at least one mass, the
        images without any mass ROI, read only when healthy crops are asked for)."""
        table = read_csv(root / "INbreast.csv")
        dcms = sorted(p for p in (root / "AllDICOMs").iterdir() if p.name.lower().endswith(".dcm"))
        if not dcms:
            raise BadInputError(root / "AllDICOMs", "no .dcm files")
        xml_dir = root / "AllXML"
        md = self.info.metadata
        records, mass_free = [], []
        for dcm in dcms:
            meta = self._log.call(parse_file_name, dcm)
            if meta is None:
                continue
            xml = xml_dir / f"{meta['file_id']}.xml"
            masses = []
            if not xml.exists():
                md["images_without_xml"] += 1
            else:
                masses = self._log.call(parse_xml, xml, md["ignored_roi_names"])
                if masses is None:
                    continue
                points = [m for m in masses if len(m.points) <= 2]
                md["ignored_point_rois"] += len(points)
                masses = [m for m in masses if len(m.points) > 2]
                if not masses:
                    md["images_without_mass"] += 1
            if not masses and not self.builder_config.healthy_crops:
                continue
            row = self._log.call(_csv_row, table, meta["file_id"], root / "INbreast.csv", dcm.name)
            if row is None:
                continue
            (records if masses else mass_free).append(
                ImageRecord(
                    dcm=dcm,
                    xml=xml if xml.exists() else None,
                    file_id=meta["file_id"],
                    patient_id=meta["patient"],
                    laterality=(row.get("laterality") or meta["lat"]).upper(),
                    view=(row.get("view") or meta["view"]).upper(),
                    birads=row.get("bi-rads", "").lower(),
                    masses=masses,
                )
            )
        return records, mass_free

    def _split_generators(self, dl_manager):
        cfg = self.builder_config
        self._log = common.SkipLog(self._skip_bad)
        md = self.info.metadata
        md["skipped"] = self._log.skipped
        md.update(
            images_without_xml=0,
            images_without_mass=0,
            ignored_point_rois=0,
            ignored_roi_names={},
            large_lesions=0,
            clipped_rois=[],
            crop="256x256 centred on the mass bbox, shifted inside the image; masses "
            "larger than 256: square of 1.2*max(bbox) resized to 256",
            normalisation="max normalisation over the crop",
        )
        root = find_layout(self._manual_dir(dl_manager))
        records, mass_free = self.scan(root)
        split_of = common.patient_split(
            [r.patient_id for r in records], cfg.train_fraction, cfg.split_seed
        )
        by_split = {"train": [], "test": []}
        for r in records:
            by_split[split_of[r.patient_id]].append(r)
        md["images"] = {s: len(v) for s, v in by_split.items()}
        common.log.info(
            "inbreast: %d images with masses (%d train, %d test)",
            len(records),
            len(by_split["train"]),
            len(by_split["test"]),
        )
        splits = {s: self._generate_examples(v) for s, v in by_split.items()}
        if cfg.healthy_crops:
            splits.update(self._healthy_splits(mass_free, split_of))
        return splits

    def _healthy_splits(self, mass_free: Sequence[ImageRecord], split_of: dict) -> dict:
        """{'train_healthy', 'test_healthy': examples} of the mass-free mammograms: a
        patient of the mass split keeps its side, the others are split among themselves."""
        cfg = self.builder_config
        md = self.info.metadata
        others = common.patient_split(
            [r.patient_id for r in mass_free if r.patient_id not in split_of],
            cfg.train_fraction, cfg.split_seed)
        by_split = {"train": [], "test": []}
        for r in mass_free:
            by_split[split_of.get(r.patient_id) or others[r.patient_id]].append(r)
        md.update(healthy_crops=cfg.healthy_crops, healthy_images_without_room=0,
                  healthy_images={s: len(v) for s, v in by_split.items()})
        common.log.info("inbreast: %d mammograms without masses for healthy crops "
                        "(%d train, %d test)", len(mass_free), len(by_split["train"]),
                        len(by_split["test"]))
        return {f"{s}_healthy": self._generate_healthy(f"{s}_healthy", v)
                for s, v in by_split.items()}

    def _generate_healthy(self, split: str, records: Sequence[ImageRecord]) -> Iterator:
        written = 0
        for rec in records:
            examples = self._log.call(self.healthy_examples, rec)
            if examples == []:
                self.info.metadata["healthy_images_without_room"] += 1
            written += len(examples or ())
            yield from examples or ()
        if not written:
            size = self.builder_config.image_size
            raise BadInputError(
                records[0].dcm.parent if records else "AllDICOMs",
                f"healthy_crops: none of the {len(records)} mass-free mammograms of split "
                f"{split} has a {size}x{size} window that is {HEALTHY_COVERAGE:.0%} breast")

    def healthy_examples(self, rec: ImageRecord) -> list:
        """The healthy crops of one mass-free mammogram (module docstring) as
        ``[(key, features), ...]``; BadInputError if the DICOM is bad."""
        cfg = self.builder_config
        size = cfg.image_size
        image = read_dicom(rec.dcm)
        seed = (cfg.split_seed, int.from_bytes(rec.file_id.encode(), "little") % 2**63)
        out = []
        for r0, c0 in healthy_windows(image, size, cfg.healthy_crops,
                                      np.random.default_rng(seed)):
            crop = common.max_normalise(image[r0:r0 + size, c0:c0 + size])
            out.append((f"{rec.file_id}_healthy_{r0}_{c0}", {
                "image": common.as_channel(crop),
                "roi": common.as_channel(np.zeros((size, size), np.uint8)),
                "patient_id": rec.patient_id, "file_id": rec.file_id,
                "laterality": rec.laterality, "view": rec.view, "birads": rec.birads}))
        return out

    def _generate_examples(self, records: Sequence[ImageRecord]) -> Iterator:
        for rec in records:
            examples = self._log.call(self.image_examples, rec)
            common.log.info("inbreast: %s -> %d masses", rec.dcm.name, len(examples or ()))
            yield from examples or ()

    def image_examples(self, rec: ImageRecord) -> list:
        """One example per mass of one mammogram; BadInputError if the DICOM is bad."""
        size = self.builder_config.image_size
        image = read_dicom(rec.dcm)
        shape = image.shape
        lesions, clipped = [], []
        for i, m in enumerate(rec.masses):
            x, y = m.points[:, 0], m.points[:, 1]
            if x.max() < 0 or y.max() < 0 or x.min() >= shape[1] or y.min() >= shape[0]:
                raise BadInputError(
                    rec.xml, f"ROI {m.name} #{i} lies outside the {shape} image {rec.dcm.name}"
                )
            lesion = polygon_mask(m.points, shape)
            if not lesion.any():
                raise BadInputError(rec.xml, f"ROI {m.name} #{i} fills no pixel")
            lesions.append(lesion)
            outside = int(np.count_nonzero((x < 0) | (y < 0) | (x >= shape[1]) | (y >= shape[0])))
            if outside:
                clipped.append(
                    f"{m.name} #{i}: {outside} of {len(x)} points outside the "
                    f"{shape[0]}x{shape[1]} image {rec.dcm.name}, clipped to it"
                )
        for reason in clipped:  # only for an image that gives its examples
            common.log.warning("inbreast: %s: %s", rec.xml, reason)
            entry = {"path": os.fspath(rec.xml), "reason": reason}
            self.info.metadata["clipped_rois"].append(entry)
        union = np.logical_or.reduce(lesions)
        out = []
        for i, lesion in enumerate(lesions):
            img, roi, (_, _, side) = crop_lesion(image, union, lesion, size)
            if side != size:
                self.info.metadata["large_lesions"] += 1
            out.append(
                (
                    f"{rec.file_id}_{i}",
                    {
                        "image": common.as_channel(img),
                        "roi": common.as_channel(roi),
                        "patient_id": rec.patient_id,
                        "file_id": rec.file_id,
                        "laterality": rec.laterality,
                        "view": rec.view,
                        "birads": rec.birads,
                    },
                )
            )
        return out


def _csv_row(table: dict, file_id: str, csv_path: epath.Path, dcm_name: str) -> dict:
    if file_id not in table:
        raise BadInputError(csv_path, f"no row with File Name {file_id} (for {dcm_name})")
    return table[file_id]
