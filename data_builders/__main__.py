r"""Builds a dataset without TensorFlow (array_record files).

  python -m data_builders brats2017 --manual_dir=DIR --data_dir=DIR [--config=paper] [--skip_bad]
  python -m data_builders inbreast  --manual_dir=DIR --data_dir=DIR [--skip_bad]

Prints progress (one line per case/image) and a summary: examples per split (and per grade
for brats2017; with grade balancing the slice counts before and after it), excluded
tumour-free slices, clipped ROIs (inbreast) and skipped files with their reasons. Read the
result with ``import data_builders; tfds.data_source(NAME, data_dir=DIR, split='train')``.
"""

import sys
import time

from absl import app, flags, logging
import tensorflow_datasets as tfds

from data_builders import common, registry

_MANUAL = flags.DEFINE_string("manual_dir", None, "folder with the raw release", required=True)
_DATA = flags.DEFINE_string("data_dir", None, "TFDS data dir to write to", required=True)
_CONFIG = flags.DEFINE_string("config", None, "builder config name (default: paper)")
_SKIP = flags.DEFINE_bool(
    "skip_bad", False, "skip unreadable files, listing them, instead of failing"
)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "rebuild even if the dataset exists")


def build(
    name: str,
    manual_dir: str,
    data_dir: str,
    config: str | None = None,
    skip_bad: bool = False,
    overwrite: bool = False,
):
    """Builds dataset ``name``; returns the builder (``.info`` has splits and metadata)."""
    if name not in registry.BUILDABLE:
        raise app.UsageError(f"dataset must be one of {', '.join(registry.BUILDABLE)}, got "
                             f"{name!r}")
    builder = registry.DATASETS[name].builder(data_dir=data_dir, config=config,
                                              skip_bad=skip_bad)
    mode = (
        tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS
        if overwrite
        else tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS
    )
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir, download_mode=mode)
    )
    return builder


def summary(builder) -> str:
    info = builder.info
    md = info.metadata or {}
    lines = [f"{info.full_name} in {builder.data_dir}"]
    per_grade = md.get("examples") or {}
    for split, s in sorted(info.splits.items()):
        grades = per_grade.get(split)
        detail = " (" + ", ".join(f"{g} {n}" for g, n in grades.items()) + ")" if grades else ""
        lines.append(f"  {split}: {s.num_examples} examples{detail}")
    if md.get("balance"):
        b = md["balance"]
        lines.append(
            f"  grades balanced (slices with tumour -> kept): {b['slices_before']} -> "
            f"{b['slices_after']}"
        )
    for key in (
        "cases",
        "images",
        "excluded_slice_count",
        "images_without_xml",
        "images_without_mass",
        "ignored_point_rois",
        "ignored_roi_names",
        "large_lesions",
    ):
        if key in md:
            lines.append(f"  {key}: {md[key]}")
    if md.get("excluded_slices"):
        lines.append("  excluded tumour-free slices: " + ", ".join(md["excluded_slices"]))
    for title, key in (("clipped ROIs", "clipped_rois"), ("skipped files", "skipped")):
        if key in md or key == "skipped":
            entries = md.get(key) or []
            lines.append(f"  {title}: {len(entries)}")
            lines += [f"    {e['path']}: {e['reason']}" for e in entries]
    return "\n".join(lines)


def main(argv):
    if len(argv) != 2:
        raise app.UsageError(f"usage: python -m data_builders {'|'.join(registry.BUILDABLE)} "
                             "--manual_dir=DIR --data_dir=DIR")
    logging.set_verbosity(logging.INFO)
    t = time.time()
    try:
        builder = build(
            argv[1], _MANUAL.value, _DATA.value, _CONFIG.value, _SKIP.value, _OVERWRITE.value
        )
    except common.BadInputError as e:
        print(
            f"ERROR: bad input {e.path}: {e.reason}\n(rerun with --skip_bad to skip such files)",
            file=sys.stderr,
        )
        return 2
    print(summary(builder))
    print(f"  build time: {time.time() - t:.1f} s")
    return 0


if __name__ == "__main__":
    app.run(main)
