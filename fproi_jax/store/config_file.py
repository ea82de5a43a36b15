"""config.json: the resolved config a run was trained with, and the check that a command
continuing the run asks for the same run.

A resumed run must be the run its checkpoints hold: every field must equal the stored one,
except the bookkeeping (where the data lies, how often to log, sample and save), the
sections that do not touch training (all but seed, data, model and train: eval, the
downstream tasks' settings, experiment), the settings of the methods the run is not (the
config holds every method's; a run reads model.name and its own method's), and the
learning rate
(lowering it is how a diverged run is continued). A longer or shorter num_steps /
num_epochs is accepted only with the constant learning rate: linear_decay derives its
schedule from the total, so the steps already taken would belong to another schedule.
`strict` (the experiment mode, which reuses finished runs) refuses a changed learning rate
too: a run is reused only if it is the run asked for. An accepted change is written into
config.json and appended to config_changes.jsonl (field, stored value, new value, time),
so the file always describes the run's latest form and its history is kept. A field added
to the configs after runs were trained (ADDED_FIELDS) is read, in a config.json without it,
as the value those runs were trained with, so that they are still the same runs, and
`load` fills it in, so that they still load.
"""
import datetime
import json
import pathlib

import ml_collections

from fproi_jax import atomic
from fproi_jax.methods import REGISTRY

CONFIG = "config.json"
CHANGES = "config_changes.jsonl"
BOOKKEEPING_FIELDS = ("data.data_dir", "train.log_every", "train.checkpoint_every",
                      "train.keep_checkpoints", "train.sample_every", "train.num_samples")
RESUMABLE_FIELDS = BOOKKEEPING_FIELDS + ("train.learning_rate",)
LENGTH_FIELDS = ("train.num_steps", "train.num_epochs")
TRAINED_SECTIONS = ("data.", "model.", "train.")  # and the field "seed"
# {field: the value of runs from before it}
ADDED_FIELDS = {"data.train_fraction": 1.0,
                **{f"model.{m}.{field}": value for m in ("fproi_gan", "fproi_gan_context")
                   for field, value in (("image_discriminator", "figure5"), ("gan_mode", "log"),
                                        ("image_generator", "unet"))},
                "model.fproi_gan_context.healthy_box_in_tissue": False}


class InvalidConfigError(ValueError):
    """A config field holds a value the run cannot use."""


class ConfigMismatchError(InvalidConfigError):
    """The command's config describes another run than the one stored in the workdir."""


def as_json(config: ml_collections.ConfigDict) -> dict:
    """The config as config.json holds it (tuples as lists)."""
    return json.loads(config.to_json_best_effort())


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def differences(stored: dict, requested: dict) -> dict:
    """{dotted field: (stored value, requested value)} of every field that differs; a field
    missing on one side has the value '<absent>' there."""
    a, b = _flatten(stored), _flatten(requested)
    return {key: (a.get(key, "<absent>"), b.get(key, "<absent>"))
            for key in sorted(set(a) | set(b)) if a.get(key, "<absent>") != b.get(key, "<absent>")}


def _allowed(field: str, stored: dict, strict: bool) -> bool:
    if field != "seed" and not field.startswith(TRAINED_SECTIONS):
        return True
    if field.startswith("model.") and field != "model.name":
        entry = REGISTRY.get(stored.get("model", {}).get("name"))
        if entry is not None and field.split(".")[1] != entry.settings_key:
            return True  # another method's settings
    if field in (BOOKKEEPING_FIELDS if strict else RESUMABLE_FIELDS):
        return True
    return field in LENGTH_FIELDS and stored["train"]["lr_schedule"] == "constant"


def load(directory) -> ml_collections.ConfigDict:
    """The config saved in a run or an export folder."""
    path = pathlib.Path(directory) / CONFIG
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file; expected a training workdir or an "
                                f"export (launch.py --mode=export)") from None
    except ValueError as e:
        raise ValueError(f"{path}: not a readable config ({e})") from None
    for field, value in ADDED_FIELDS.items():
        *sections, key = field.split(".")
        parent = stored
        for section in sections:
            parent = parent.get(section) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            parent.setdefault(key, value)
    return ml_collections.ConfigDict(stored)


def check(config: ml_collections.ConfigDict, directory, strict: bool = False) -> dict:
    """Raises ConfigMismatchError listing every field of `config` that differs from the run
    stored in `directory` and may not change; returns the allowed differences ({} for a new
    run or the same config)."""
    path = pathlib.Path(directory) / CONFIG
    if not path.is_file():
        return {}
    stored = json.loads(path.read_text())
    changed = {k: v for k, v in differences(stored, as_json(config)).items()
               if v != ("<absent>", ADDED_FIELDS.get(k, "<absent>"))}
    refused = {k: v for k, v in changed.items() if not _allowed(k, stored, strict)}
    if refused:
        lines = "\n".join(f"  {k}: the run has {a!r}, this command gives {b!r}"
                          for k, (a, b) in refused.items())
        raise ConfigMismatchError(
            f"{directory} holds another run than this command describes:\n{lines}\n"
            f"Use another --workdir, or the run's own settings (its {CONFIG}).")
    return changed


def write(config: ml_collections.ConfigDict, directory, step: int = 0):
    """Writes config.json atomically, first recording in config_changes.jsonl what an
    allowed change replaces (check() must have passed)."""
    directory = pathlib.Path(directory)
    changed = check(config, directory)
    if changed:
        record = {"step": step, "time": datetime.datetime.now().isoformat(timespec="seconds"),
                  "changes": {k: {"from": a, "to": b} for k, (a, b) in changed.items()}}
        with open(directory / CHANGES, "a") as f:
            f.write(json.dumps(record) + "\n")
    if changed or not (directory / CONFIG).is_file():
        atomic.write_text(directory / CONFIG, config.to_json_best_effort(indent=2))
