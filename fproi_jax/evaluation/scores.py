"""The per-run metrics, one registry: what the eval step computes and what the tables show.

Each `Score` names its columns (key -> table label), what it compares (kind "image":
F(G(x)) against x, once over the whole image and once over the tumour region, the column
then being f"{region}_{key}"; kind "roi": G(F(y)) against y), the function computing its
columns from a batch, whether higher is better, and the smallest image it is defined on
(smaller runs leave its columns out, read "—" in the tables), and which of its columns
runs evaluated before they existed lack. Adding a metric: a function in fproi_jax/metrics
and one line in SCORES (MAE was added so).
"""
import dataclasses
from typing import Callable

from fproi_jax import metrics

REGIONS = {"whole": "Whole image", "tumour": "Tumour region"}
MS_SSIM_MIN_SIZE = 11 * 2 ** 4  # 5 scales of an 11-px window


@dataclasses.dataclass(frozen=True)
class Score:
    columns: dict                 # {key: label in the tables}
    kind: str                     # "image" or "roi"
    compute: Callable             # (synthesized, real) (N, H, W, 1) -> {key: (N,) values}
    higher_is_better: bool
    min_size: int = 0             # images smaller than this leave the columns out
    added_later: tuple = ()       # its keys that runs evaluated before they existed lack


def _one(key, fn):
    return lambda synthesized, real: {key: fn(synthesized, real)}


SCORES = (
    Score({"psnr": "PSNR"}, "image", _one("psnr", metrics.psnr), True),
    Score({"ssim": "SSIM"}, "image", _one("ssim", metrics.ssim), True),
    Score({"ms_ssim": "MS-SSIM"}, "image", _one("ms_ssim", metrics.ms_ssim), True,
          MS_SSIM_MIN_SIZE),
    Score({"mae": "MAE"}, "image", _one("mae", metrics.mae), False, added_later=("mae",)),
    Score({"dice": "Dice"}, "roi", _one("dice", metrics.dice), True),
    # Hausdorff two ways (fproi_jax.metrics.hausdorff), from one distance transform per ROI:
    # the paper's eq. 6 over all ROI pixels, and between the ROI boundaries as MONAI, medpy
    # and BraTS report it.
    Score({"hausdorff": "Hausdorff (eq. 6, pixels)", "hausdorff95": "HD95 (eq. 6, pixels)",
           "surface_hausdorff": "Hausdorff (surface)", "surface_hausdorff95": "HD95 (surface)"},
          "roi", lambda s, r: metrics.hausdorff_distances(s, r, percentile=95), False,
          added_later=("hausdorff95", "surface_hausdorff", "surface_hausdorff95")),
)

IMAGE_METRICS = {k: v for s in SCORES if s.kind == "image" for k, v in s.columns.items()}
ROI_METRICS = {k: v for s in SCORES if s.kind == "roi" for k, v in s.columns.items()}
_IMAGE_COLUMNS = {region: tuple(f"{region}_{key}" for key in IMAGE_METRICS) for region in REGIONS}
ALL_METRICS = (*(name for names in _IMAGE_COLUMNS.values() for name in names), *ROI_METRICS)
METRICS = {"image": _IMAGE_COLUMNS, "roi": tuple(ROI_METRICS)}


def _score_of(column: str) -> Score:
    region, _, key = column.partition("_")
    for score in SCORES:
        if score.kind == "roi" and column in score.columns:
            return score
        if score.kind == "image" and region in REGIONS and key in score.columns:
            return score
    raise KeyError(f"{column!r} is not a column of evaluation.scores.SCORES")


def higher_is_better(column: str) -> bool:
    return _score_of(column).higher_is_better


def label(column: str) -> str:
    """'PSNR (tumour region)', 'Dice', ...: the column's name in a table."""
    region, _, key = column.partition("_")
    score = _score_of(column)
    if score.kind == "image":
        return f"{score.columns[key]} ({REGIONS[region].lower()})"
    return score.columns[column]


def size_limited(image_size: int | None = None) -> list:
    """The columns that images of `image_size` px leave out (None: every size-limited one)."""
    return [column for column in ALL_METRICS
            if _score_of(column).min_size and (image_size is None
                                                or image_size < _score_of(column).min_size)]


def optional_columns() -> tuple:
    """The columns a run's per_example.csv may lack: those added later and those of
    size-limited scores."""
    later = [f"{region}_{key}" if score.kind == "image" else key
             for score in SCORES for key in score.added_later
             for region in (REGIONS if score.kind == "image" else (None,))]
    return tuple(c for c in ALL_METRICS if c in later or c in size_limited())


def size_note() -> str:
    """The tables' footnote on columns left out for small images."""
    limited = [s for s in SCORES if s.min_size]
    return " ".join(f"— {', '.join(s.columns.values())} not computed: it needs images of at "
                    f"least {s.min_size} px." for s in limited)


def compute(images, rois, synthesized_images, synthesized_rois, image_size: int) -> dict:
    """{column: (N,) values}, in ALL_METRICS order, of every score defined at
    `image_size`: image scores of F(G(x)) against x over both regions (the tumour region:
    both times the REAL ROI), ROI scores of G(F(y)) against y."""
    pairs = {"whole": (synthesized_images, images),
             "tumour": (metrics.tumour_region(synthesized_images, rois),
                        metrics.tumour_region(images, rois))}
    out = {}
    for score in SCORES:
        if image_size < score.min_size:
            continue
        if score.kind == "image":
            for region, pair in pairs.items():
                out.update({f"{region}_{k}": v for k, v in score.compute(*pair).items()})
        else:
            out.update(score.compute(synthesized_rois, rois))
    return {column: out[column] for column in ALL_METRICS if column in out}
