"""HGG/LGG classification with ResNet-18 features + SVM: paper section 3.2, Table 5, Figure 9.

Function-level API on numpy arrays (grades in the brats2017 builder encoding, HGG = 0,
LGG = 1; HGG is the positive class of every metric):

* :func:`features.load_source`, :func:`features.extract_features` -- ResNet-18 features
  from ``random`` (stand-in), ``imagenet:PATH`` (converted torchvision weights) or
  ``in_domain`` sources;
* :func:`svm.fit_and_score` -- first 500 features, StandardScaler, RFE to 30, RBF SVM
  with patient-grouped 5-fold CV;
* :mod:`metrics` -- AUC, accuracy, sensitivity, specificity (eqs. 7-9), bootstrap
  intervals, paired test over seeds;
* :func:`report.run_experiment` -- all groups x seeds, Table 5 (Markdown + JSON) and
  Figure 9 (ROC curves);
* :func:`convert.convert_state_dict` -- torchvision ResNet-18 state dict -> Flax variables.
"""

from fproi_jax.classify.features import FeatureSource, extract_features, load_source
from fproi_jax.classify.report import PatientLeakageError, run_experiment
from fproi_jax.classify.svm import fit_and_score

__all__ = [
    "FeatureSource",
    "PatientLeakageError",
    "extract_features",
    "fit_and_score",
    "load_source",
    "run_experiment",
]
