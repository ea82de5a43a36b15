"""Table 5 (paper section 3.2, Figure 9): does adding synthesized slices to the training set
of an HGG/LGG classifier help it? The task `classification`; `launch.py --mode=classify`.

As the paper lays it out, the classifier trains on the synthesis *test* split
(config.data.test_split) and is tested on the synthesis *training* split
(config.data.train_split): the GANs were trained on the classifier's test patients, never
on its training patients. Groups, each a full training set of the classifier:

- "Real only": the real training slices;
- "+ <method>": plus the method's image synthesis x -> F(G(x)) of every real training
  slice, labelled with the grade and patient of its source slice;
- "+ <method> (new ROIs)": plus F(y') for new ROIs y' (pairs.new_rois).

The classifier itself (ResNet-18 features, RFE, RBF SVM, the statistics) is
fproi_jax/classify; this module assembles the groups from the runs.
"""
import ml_collections
import numpy as np

from data_builders import registry
from fproi_jax import results
from fproi_jax.classify import report as classify_report
from fproi_jax.classify import svm
from fproi_jax.tasks import pairs
from fproi_jax.tasks.base import InsufficientDataError, Task

REAL = "Real only"
FIGURE = results.Figure("Figure 9: ROC curves of the HGG/LGG classifier", "figure9_roc.png")
PROTOCOL = (
    "Protocol (paper section 3.2): the classifier trains on {data.name} split "
    "'{data.test_split}' (real slices, plus each group's synthesized ones) and is tested on "
    "split '{data.train_split}'. The synthesis runs ({runs}) were trained on "
    "'{data.train_split}': they never saw the classifier's training patients, but they did "
    "see its test patients. Synthesized slices carry the grade and patient of their source.")


def default_config() -> ml_collections.ConfigDict:
    """config.classify."""
    return ml_collections.ConfigDict({
        "runs": "",             # --mode=classify: "Fproi-GAN=RUN_DIR,CycleGAN=RUN_DIR" (or exports)
        "features": "random",   # random[:SEED] (a stand-in) | imagenet:NPZ | in_domain
        "seeds": 5,             # SVM/CV fits per group, for mean +- std and t-tests
        "new_rois": True,       # also a group of F(y') for deformed real ROIs y'
        "seed": 0,              # of the ROI deformations
        "deform_alpha": 34.0,   # elastic deformation strength (pixels) and
        "deform_sigma": 4.0,    # smoothness (Simard et al. 2003)
    })


def check_patients(train: dict, test: dict, config: ml_collections.ConfigDict):
    """InsufficientDataError unless the classifier's training split has grades, svm.CV_FOLDS
    patients of each grade, and no patient of its test split (checked before any synthesis
    or feature extraction)."""
    grades = registry.get(config.data.name).groups
    if grades != ("HGG", "LGG"):
        raise InsufficientDataError(f"{config.data.name}: the classifier needs a dataset with "
                                    f"HGG/LGG grades (brats2017)")
    for grade, name in enumerate(grades):
        patients = set(train["patient_id"][train["group"] == grade])
        if len(patients) < svm.CV_FOLDS:
            raise InsufficientDataError(
                f"{config.data.name} split '{config.data.test_split}' (the classifier's "
                f"training set) has {len(patients)} {name} patients; its {svm.CV_FOLDS}-fold "
                f"cross-validation grouped by patient needs {svm.CV_FOLDS}")
    pairs.check_disjoint(train, test, config.data.test_split, config.data.train_split)


def run(config: ml_collections.ConfigDict, runs: dict, out_dir) -> results.Result:
    """Table 5 and Figure 9 of the runs ({label: run dir or export}) into `out_dir`
    (table5.md/json, figure9_roc.png, scores.npz: classify/report.run_experiment)."""
    real = pairs.load_slices(config, config.data.test_split)
    test = pairs.load_slices(config, config.data.train_split)
    check_patients(real, test, config)
    settings = config.classify
    rois = (pairs.new_rois(real["roi"], settings.seed, settings.deform_alpha,
                           settings.deform_sigma) if settings.new_rois else None)
    groups = {REAL: (real["image"], real["group"], real["patient_id"])}
    for run_path in runs.values():
        label, made = pairs.synthesized(run_path, config, real, rois, settings.seed)
        for name, images in ((f"+ {label}", made["images"]),
                             (f"+ {label} (new ROIs)", made.get("new"))):
            if images is not None:
                groups[name] = tuple(np.concatenate([a, b]) for a, b in zip(
                    groups[REAL], (images, real["group"], real["patient_id"])))
    protocol = PROTOCOL.format(data=config.data, runs=", ".join(
        f"{name}={path}" for name, path in runs.items()))
    summary = classify_report.run_experiment(
        groups, (test["image"], test["group"], test["patient_id"]), settings.features,
        seeds=range(settings.seeds), out_dir=out_dir, baseline=REAL, protocol=protocol)
    return results.Result([classify_report.table5(summary)], [FIGURE], summary)


TASK = Task("classification", "classify", default_config, run)
