r"""Writes synthetic raw data: ``python -m data_builders.phantom brats|inbreast --out=DIR``.

Flags:
  --cases   BRATS cases (default 20) or INbreast images (default 30).
  --size    BRATS: XxYxZ (default 240x240x155). INbreast: ROWSxCOLS, several separated by
            commas, cycled per patient (default 4084x3328,3328x2560).
  --seed    random seed (default 0).
  --anatomy BRATS: ellipse (default; an ellipsoid head) or mni (the MNI ICBM152 2009 brain
            shipped inside nilearn, deformed per case; no download).
"""

import sys
import time

from absl import app, flags

from data_builders import phantom

_OUT = flags.DEFINE_string("out", None, "output (manual) directory", required=True)
_CASES = flags.DEFINE_integer("cases", None, "number of cases (brats) or images (inbreast)")
_SIZE = flags.DEFINE_string("size", None, "brats: XxYxZ; inbreast: ROWSxCOLS[,ROWSxCOLS]")
_SEED = flags.DEFINE_integer("seed", 0, "random seed")
_ANATOMY = flags.DEFINE_enum(
    "anatomy", "ellipse", ["ellipse", "mni"], "brats: ellipsoid head or the MNI 2009 brain"
)


def _parse(s):
    return tuple(int(v) for v in s.lower().split("x"))


def main(argv):
    if len(argv) != 2 or argv[1] not in ("brats", "inbreast"):
        raise app.UsageError("usage: python -m data_builders.phantom brats|inbreast --out=DIR")
    t = time.time()
    if argv[1] == "brats":
        shape = _parse(_SIZE.value) if _SIZE.value else phantom.FULL_SHAPE
        out = phantom.write_brats(
            _OUT.value, cases=_CASES.value or 20, shape=shape, seed=_SEED.value, progress=True,
            anatomy=_ANATOMY.value,
        )
        print(
            f"wrote {len(out)} BRATS phantom cases ({_ANATOMY.value}) of shape {shape} to "
            f"{_OUT.value} "
            f"in {time.time() - t:.1f} s"
        )
    else:
        sizes = [_parse(s) for s in _SIZE.value.split(",")] if _SIZE.value else phantom.FULL_SIZES
        out = phantom.write_inbreast(
            _OUT.value, images=_CASES.value or 30, sizes=sizes, seed=_SEED.value, progress=True
        )
        n_mass = sum(len(r["masses"]) for r in out)
        print(
            f"wrote {len(out)} INbreast phantom images ({n_mass} masses) to {_OUT.value} "
            f"in {time.time() - t:.1f} s"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    app.run(main)
