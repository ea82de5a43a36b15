"""Table 5 from trained runs (`launch.py --mode=classify`): does adding synthesized slices to
the training set of an HGG/LGG classifier help it? (paper section 3.2, Figure 9)

As the paper lays it out, the classifier trains on the synthesis *test* split
(config.data.test_split) and is tested on the synthesis *training* split
(config.data.train_split): the GANs were trained on the classifier's test patients, never
on its training patients. Groups, each a full training set of the classifier:

- "Real only": the real training slices;
- "+ <method>": plus the method's image synthesis x -> F(G(x)) of every real training
  slice, labelled with the grade and patient of its source slice;
- "+ <method> (new ROIs)": plus F(y') for new ROIs y', seeded elastic deformations of the
  real training ROIs (beyond the paper: pairs the dataset does not hold).

The classifier itself (ResNet-18 features, RFE, RBF SVM, the statistics) is
fproi_jax/classify; this module only assembles the groups from the runs.
"""
import json
import pathlib

import jax
import ml_collections
import numpy as np

from data_builders import registry
from fproi_jax import atomic
from fproi_jax.classify import report as classify_report
from fproi_jax.classify import svm
from fproi_jax.data import deform, pipeline
from fproi_jax.evaluation.load import load_generators, map_batches

REAL = "Real only"
PROTOCOL = (
    "Protocol (paper section 3.2): the classifier trains on {data.name} split "
    "'{data.test_split}' (real slices, plus each group's synthesized ones) and is tested on "
    "split '{data.train_split}'. The synthesis runs ({runs}) were trained on "
    "'{data.train_split}': they never saw the classifier's training patients, but they did "
    "see its test patients. Synthesized slices carry the grade and patient of their source.")


class InsufficientDataError(ValueError):
    """The dataset cannot support the experiment (no grades, too few patients, shared ones)."""


def load_slices(config: ml_collections.ConfigDict, split: str) -> dict:
    """{'image', 'roi', 'grade', 'patient_id'} of a whole split at config.data.image_size."""
    source = pipeline.load_split(config.data, split)
    if len(source) == 0 or not registry.get(config.data.name).groups:
        raise InsufficientDataError(f"{config.data.name} {split}: the classifier needs a "
                                    f"dataset with a 'grade' feature (brats2017)")
    columns = pipeline.concatenate(pipeline.eval_batches(source, config.data,
                                                         config.eval.batch_size))
    return {"image": columns["image"], "roi": columns["roi"], "grade": columns["group"],
            "patient_id": columns["patient_id"]}


def check_patients(train: dict, test: dict, config: ml_collections.ConfigDict):
    """InsufficientDataError unless every grade has CV_FOLDS training patients and no
    patient is on both sides (checked before any synthesis or feature extraction)."""
    for grade, name in enumerate(("HGG", "LGG")):
        patients = set(train["patient_id"][train["grade"] == grade])
        if len(patients) < svm.CV_FOLDS:
            raise InsufficientDataError(
                f"{config.data.name} split '{config.data.test_split}' (the classifier's "
                f"training set) has {len(patients)} {name} patients; its {svm.CV_FOLDS}-fold "
                f"cross-validation grouped by patient needs {svm.CV_FOLDS}")
    shared = set(train["patient_id"]) & set(test["patient_id"])
    if shared:
        raise InsufficientDataError(
            f"splits '{config.data.test_split}' and '{config.data.train_split}' share patients "
            f"{sorted(shared)[:5]}: the classifier's test would see its training patients")


def new_rois(rois: np.ndarray, seed: int, alpha: float, sigma: float) -> np.ndarray:
    """One elastic deformation per real ROI (deform.deform_roi), seeded by (seed, index)."""
    keys = jax.random.split(jax.random.key(seed), len(rois))
    deformed = jax.jit(jax.vmap(lambda roi, key: deform.deform_roi(roi, key, alpha, sigma)))
    return np.asarray(deformed(rois, keys))


def synthesized(run: pathlib.Path, config: ml_collections.ConfigDict, real: dict,
                with_new_rois: bool) -> tuple[str, dict]:
    """(the run's label, {'images': F(G(x)) of each real slice, 'new': F(y') or absent})."""
    run_config, method, variables = load_generators(run)
    size = run_config.data.image_size
    if size != config.data.image_size:
        raise ValueError(f"{run}: trained at {size} px, the classifier's data is at "
                         f"{config.data.image_size} px; pass --config.data.image_size={size}")
    batch_size = config.eval.batch_size

    @jax.jit
    def synthesize(variables, batch):
        _, x_hat = method.image_synthesis(variables, batch["image"], batch["roi"])
        out = {"images": x_hat}
        if "new_roi" in batch:
            out["new"] = method.roi_synthesis(variables, batch["new_roi"])[0]
        return out

    inputs = {"image": real["image"], "roi": real["roi"]}
    if with_new_rois:
        inputs["new_roi"] = new_rois(real["roi"], config.classify.seed,
                                     config.classify.deform_alpha, config.classify.deform_sigma)
    n = len(real["image"])
    batches = ({k: v[i:i + batch_size] for k, v in inputs.items()}
               for i in range(0, n, batch_size))
    outputs = {}
    step = lambda batch: synthesize(variables, batch)  # noqa: E731
    for _, out in map_batches(step, batches, batch_size, n, f"synthesize {method.label}"):
        for key, value in out.items():
            outputs.setdefault(key, []).append(value)
    return method.label, {key: np.concatenate(value) for key, value in outputs.items()}


def classify(config: ml_collections.ConfigDict, runs: dict, out_dir: pathlib.Path) -> dict:
    """Table 5 and Figure 9 of the runs ({name: run dir or export}) into `out_dir`."""
    real = load_slices(config, config.data.test_split)
    test = load_slices(config, config.data.train_split)
    check_patients(real, test, config)
    groups = {REAL: (real["image"], real["grade"], real["patient_id"])}
    for run in runs.values():
        label, made = synthesized(pathlib.Path(run), config, real, config.classify.new_rois)
        groups[f"+ {label}"] = tuple(np.concatenate([a, b]) for a, b in zip(
            groups[REAL], (made["images"], real["grade"], real["patient_id"])))
        if "new" in made:
            groups[f"+ {label} (new ROIs)"] = tuple(np.concatenate([a, b]) for a, b in zip(
                groups[REAL], (made["new"], real["grade"], real["patient_id"])))
    summary = classify_report.run_experiment(
        groups, (test["image"], test["grade"], test["patient_id"]), config.classify.features,
        seeds=range(config.classify.seeds), out_dir=out_dir, baseline=REAL)
    summary["protocol"] = PROTOCOL.format(data=config.data, runs=", ".join(
        f"{name}={path}" for name, path in runs.items()))
    table = pathlib.Path(out_dir) / "table5.md"
    atomic.write_text(table, table.read_text() + "\n" + summary["protocol"] + "\n")
    atomic.write_text(pathlib.Path(out_dir) / "table5.json", json.dumps(summary, indent=2) + "\n")
    print(table.read_text())
    return summary
