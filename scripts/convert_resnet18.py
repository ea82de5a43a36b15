"""Converts torchvision's ImageNet ResNet-18 checkpoint into the Flax variables of
``fproi_jax.classify.resnet18.ResNet18`` (.npz), for the feature source ``imagenet:PATH``.

    PYTHONPATH=.:.venv/lib/python3.11/site-packages /tmp/torchvenv/bin/python \\
        scripts/convert_resnet18.py resnet18-f37072fd.pth resnet18_imagenet.npz

Needs torch (only to read the .pth; no torchvision) plus jax/flax/numpy (here borrowed
from the project's .venv). The mapping is
:func:`fproi_jax.classify.convert.convert_state_dict`.
"""

import sys


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    from fproi_jax.classify import convert  # pylint: disable=g-import-not-at-top

    state_dict = convert.read_pth(argv[1])
    variables = convert.convert_state_dict(state_dict)
    convert.save_npz(argv[2], variables)
    n = sum(1 for k in state_dict if convert.flax_path(k) is not None)
    print(f"converted {n} of {len(state_dict)} tensors (fc and num_batches_tracked dropped) "
          f"-> {argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
