"""fproi_jax.classify: ResNet-18 features + SVM HGG/LGG classifier (paper 3.2, Table 5)."""

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from fproi_jax import statistics
from fproi_jax.classify import convert, features, metrics, report, resnet18, svm

BATCH = 32


@pytest.fixture(scope="module")
def phantom_sets(classify_brats):
    """(images, grades, patient ids) of the train and test splits of `classify_brats`."""
    from fproi_jax.data import pipeline

    def arrays(split):
        source = pipeline.load_split(classify_brats, split)
        e = [source[i] for i in range(len(source))]
        return (np.stack([x["image"] for x in e]), np.array([int(x["grade"]) for x in e]),
                np.array([x["patient_id"].decode() for x in e]))

    return arrays("train"), arrays("test")


# ------------------------------------------------------------------ end to end on a phantom


def test_real_only_random_features_separate_phantom_grades(phantom_sets, tmp_path):
    """Phantom HGG (necrotic core + enhancing rim, larger) vs LGG: a real signal."""
    train, test = phantom_sets
    extra = tuple(np.concatenate([a, a[:10]]) for a in train)  # repeats: no new features
    summary = report.run_experiment(
        {"Real only": train, "+ repeats": extra}, test, "random", seeds=[0, 1],
        out_dir=tmp_path, batch_size=BATCH, n_bootstrap=300, progress=False)
    real = summary["groups"]["Real only"]
    assert real["auc"]["mean"] > 0.9, real
    assert real["accuracy"]["mean"] > 0.75, real
    lo, hi = real["auc"]["ci95"]
    assert lo <= real["auc"]["mean"] <= hi
    assert real["n_train"] == {"HGG": int((train[1] == 0).sum()), "LGG": int((train[1] == 1).sum())}
    assert summary["timing_s"]["distinct_images"] == len(train[0]) + len(test[0])
    vs = summary["groups"]["+ repeats"]["vs_baseline"]
    assert vs["n_seeds"] == 2 and "ttest_rel" in vs["test"]
    assert summary["feature_source"]["stand_in"]
    md = (tmp_path / "table5.md").read_text()
    assert "| Real only | " in md and "| + repeats | " in md and "stand-in" in md
    assert "| significant | p (refit seeds) vs Real only |" in md
    lo, hi = vs["auc_difference_ci95"]
    assert vs["significant"] == (lo > 0 or hi < 0)
    assert json.loads((tmp_path / "table5.json").read_text())["baseline"] == "Real only"
    assert (tmp_path / "figure9_roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    scores = np.load(tmp_path / "scores.npz")
    assert scores["scores"].shape == (2, 2, len(test[0]))


def test_features_do_not_depend_on_batching(phantom_sets):
    images = phantom_sets[0][0][:40]
    a = features.extract_features("random", images, BATCH, progress=False)
    b = features.extract_features("random", images[8:], BATCH, progress=False)
    assert a.shape == (40, 512) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_allclose(a[8:], b, rtol=1e-5, atol=1e-5)


def test_patient_leakage_raises(phantom_sets):
    train, test = phantom_sets
    leaky = tuple(np.concatenate([a, b[:1]]) for a, b in zip(train, test))
    with pytest.raises(report.PatientLeakageError, match=str(test[2][0])):
        report.run_experiment({"Real only": leaky}, test, "random", progress=False)
    with pytest.raises(report.PatientLeakageError, match="training set of group '\\+ GAN'"):
        report.run_experiment({"Real only": train, "+ GAN": leaky}, test, "random",
                              progress=False)


# ------------------------------------------------------------------------------ SVM


def _toy(n_patients=10, per=6, seed=0):
    rng = np.random.default_rng(seed)
    grades = np.repeat(np.arange(n_patients) % 2, per)
    x = rng.normal(size=(len(grades), 512))
    x[:, :5] += 1.5 * (grades == 0)[:, None]  # HGG shifted in 5 features
    return x, grades, np.repeat([f"p{i}" for i in range(n_patients)], per)


def test_fit_and_score_rfe_keeps_exactly_30_and_scores_hgg_positive():
    x, g, p = _toy()
    xt, gt, _ = _toy(6, 5, seed=1)
    r = svm.fit_and_score(x, g, p, xt, gt, seed=0)
    sel = r["selected_features"]
    assert len(sel) == 30 and len(set(sel)) == 30 and sel.max() < 500
    assert len(set(range(5)) & set(sel)) >= 4  # the informative features survive
    np.testing.assert_array_equal(r["y_true"], (gt == 0).astype(int))
    assert r["metrics"]["auc"] > 0.9
    assert r["metrics"] == metrics.binary_metrics(r["y_true"], r["y_pred"], r["scores"])


def test_fit_and_score_needs_five_patients_per_grade():
    x, g, p = _toy(n_patients=8)
    with pytest.raises(ValueError, match="at least 5 training patients.*HGG has 4"):
        svm.fit_and_score(x, g, p, x, g)


# -------------------------------------------------------------------------- metrics


def test_metrics_equal_scikit_learn():
    rng = np.random.default_rng(0)
    grades = rng.integers(0, 2, 200)
    y = metrics.hgg_positive(grades)
    np.testing.assert_array_equal(y, 1 - grades)  # builder HGG = 0 -> positive 1
    scores = np.round(rng.normal(size=200) + y, 1)  # rounded: ties
    pred = (scores > 0.8).astype(int)
    m = metrics.binary_metrics(y, pred, scores)
    assert m["fp"] != m["fn"] and m["tp"] != m["tn"]  # so a swapped formula shows
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, scores), abs=1e-12)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["sensitivity"] == pytest.approx(skm.recall_score(y, pred, pos_label=1))
    assert m["specificity"] == pytest.approx(skm.recall_score(y, pred, pos_label=0))
    fpr, tpr = metrics.roc_curve(y, scores)
    sk_fpr, sk_tpr, _ = skm.roc_curve(y, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    with pytest.raises(ValueError):
        metrics.hgg_positive([0, 2])


def test_bootstrap_interval_and_paired_seed_test():
    rng = np.random.default_rng(1)
    y = np.repeat([1, 0], 30)
    scores = rng.normal(size=60) + y
    pids = np.repeat(np.arange(12), 5)
    lo, hi = metrics.bootstrap_auc_ci(y, scores, pids, n_resamples=500, seed=0)
    assert lo < metrics.roc_auc(y, scores) < hi
    assert (lo, hi) == metrics.bootstrap_auc_ci(y, scores, pids, n_resamples=500, seed=0)
    a, b = [0.80, 0.82, 0.79, 0.85], [0.84, 0.85, 0.80, 0.90]
    t = metrics.paired_seed_test(a, b)
    from scipy import stats
    assert t["p_value"] == pytest.approx(stats.ttest_rel(b, a).pvalue)
    assert metrics.paired_seed_test([0.8], [0.9])["p_value"] is None
    assert "n/a" in metrics.paired_seed_test([0.8], [0.9])["reason"]


def test_significant_is_the_patient_bootstrap_interval_not_the_refit_seed_t_test():
    """A group worse on every refit seed (refit-seed p < 0.05) whose patient-bootstrap ΔAUC
    interval still includes 0: Table 5 must say "no"."""
    pids = np.repeat(np.arange(12), 3)  # 6 HGG + 6 LGG patients, 3 slices each
    grades = np.where(pids < 6, metrics.HGG, metrics.LGG)
    y = metrics.hgg_positive(grades)
    rng = np.random.default_rng(0)
    patient = y + np.repeat(rng.normal(0, 0.8, 12), 3)
    base = np.stack([patient + rng.normal(0, 0.05, y.size) for _ in range(3)])  # 3 seeds
    group = base.copy()
    group[:, pids == 0] += 1.0  # one HGG patient scored higher: helps
    group[:, pids == 7] += 0.6  # one LGG patient scored higher: hurts more
    per_seed = {name: {m: [metrics.binary_metrics(y, s > 0.5, s)[m] for s in scores]
                       for m in ("auc", "accuracy", "sensitivity", "specificity")}
                for name, scores in (("Real only", base), ("+ GAN", group))}
    boot, _ = metrics.bootstrap_aucs(y, np.stack([base, group]), pids, 500, seed=0)
    rows = report.score_rows(per_seed, boot, "Real only")

    vs = rows["+ GAN"]["vs_baseline"]
    lo, hi = vs["auc_difference_ci95"]
    assert (lo, hi) == statistics.percentile_interval(boot[:, 1] - boot[:, 0])
    assert lo < 0 < hi
    from scipy import stats
    want = stats.ttest_rel(per_seed["+ GAN"]["auc"], per_seed["Real only"]["auc"]).pvalue
    assert vs["p_value"] == pytest.approx(want) and want < 0.05
    assert vs["auc_difference"] == pytest.approx(
        np.mean(per_seed["+ GAN"]["auc"]) - np.mean(per_seed["Real only"]["auc"]))
    assert vs["auc_difference"] < 0
    assert vs["significant"] is False
    rows["+ GAN"]["n_train"] = {"HGG": 18, "LGG": 18}
    cells = report.table5_row("+ GAN", rows["+ GAN"])
    assert cells[-2:] == ["no", f"{want:.3g}"]
    assert cells[-3] == f"{vs['auc_difference']:+.3f} ({lo:+.3f}, {hi:+.3f})"


# ----------------------------------------------------------------------- conversion


def _bn_keys(shapes):
    return sorted({k.rsplit(".", 1)[0] for k in shapes if k.endswith("running_mean")})


def fake_torchvision_state_dict(seed=0):
    """A state dict with torchvision's ResNet-18 names and shapes, distinct random values."""
    rng = np.random.default_rng(seed)
    shapes = convert.torchvision_shapes()
    sd = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
    for k in sd:
        if k.endswith("running_var"):
            sd[k] = np.abs(sd[k]) + 0.5
    for bn in _bn_keys(shapes):
        sd[f"{bn}.num_batches_tracked"] = np.array(7, np.int64)
    return sd


def _conv_reference(x_nchw, w_oihw, stride, pad):
    """torch.nn.functional.conv2d semantics (cross-correlation) in plain numpy."""
    x = np.pad(x_nchw, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    o, _, kh, kw = w_oihw.shape
    h = (x.shape[2] - kh) // stride + 1
    w = (x.shape[3] - kw) // stride + 1
    out = np.zeros((x.shape[0], o, h, w))
    for i in range(h):
        for j in range(w):
            patch = x[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w_oihw)
    return out


def test_convert_state_dict_fills_every_leaf_correctly(tmp_path):
    import flax.linen as nn
    import jax

    sd = fake_torchvision_state_dict()
    params = [k for k in sd if not k.endswith(("running_mean", "running_var", "tracked"))]
    assert len(params) == 62  # torchvision resnet18.parameters(): 62 tensors
    assert len(sd) == 122  # state_dict(): + 3 buffers for each of the 20 BatchNorms
    v = convert.convert_state_dict(sd)
    ref = resnet18.init_variables(0, image_size=32)
    assert jax.tree_util.tree_structure(v) == jax.tree_util.tree_structure(ref)
    leaves = jax.tree_util.tree_leaves(v)
    assert len(leaves) == 100  # 62 - fc (2) + 2 x 20 running statistics
    np.testing.assert_array_equal(v["params"]["conv1"]["kernel"],
                                  sd["conv1.weight"].transpose(2, 3, 1, 0))
    k = v["params"]["layer3_0"]["downsample_0"]["kernel"]
    assert k.shape == (1, 1, 128, 256)
    assert k[0, 0, 5, 7] == sd["layer3.0.downsample.0.weight"][7, 5, 0, 0]
    assert v["params"]["layer2_1"]["conv2"]["kernel"][2, 0, 3, 9] == \
        sd["layer2.1.conv2.weight"][9, 3, 2, 0]
    np.testing.assert_array_equal(v["params"]["layer4_1"]["bn2"]["scale"],
                                  sd["layer4.1.bn2.weight"])
    np.testing.assert_array_equal(v["batch_stats"]["layer2_0"]["downsample_1"]["var"],
                                  sd["layer2.0.downsample.1.running_var"])
    np.testing.assert_array_equal(v["batch_stats"]["bn1"]["mean"], sd["bn1.running_mean"])
    # every torchvision value lands exactly once: the multisets of numbers agree
    used = np.sort(np.concatenate([sd[k].ravel() for k in sd
                                   if convert.flax_path(k) is not None]))
    np.testing.assert_array_equal(np.sort(np.concatenate([x.ravel() for x in leaves])), used)

    # the converted stem kernel computes torch's conv2d (7x7, stride 2, padding 3)
    x = np.random.default_rng(2).normal(size=(1, 3, 11, 11)).astype(np.float32)
    conv = resnet18._conv(64, 7, 2, "conv1")
    got = conv.apply({"params": v["params"]["conv1"]}, x.transpose(0, 2, 3, 1))
    want = _conv_reference(x, sd["conv1.weight"], 2, 3).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-4)
    assert isinstance(conv, nn.Conv)

    convert.save_npz(tmp_path / "w.npz", v)
    back = convert.load_npz(tmp_path / "w.npz")
    jax.tree_util.tree_map(np.testing.assert_array_equal, back, v)


def test_convert_state_dict_rejects_bad_input():
    sd = fake_torchvision_state_dict()
    with pytest.raises(ValueError, match="layer1.0.conv1.weight"):
        convert.convert_state_dict({**sd, "layer1.0.conv1.weight": np.zeros((64, 64, 1, 1))})
    with pytest.raises(KeyError, match="lacks 1 keys"):
        convert.convert_state_dict({k: a for k, a in sd.items() if k != "bn1.bias"})
    with pytest.raises(KeyError, match="layer1.0.conv3.weight"):
        convert.convert_state_dict({**sd, "layer1.0.conv3.weight": np.zeros((64, 64, 3, 3))})


def test_feature_sources(tmp_path, phantom_sets):
    v = convert.convert_state_dict(fake_torchvision_state_dict())
    convert.save_npz(tmp_path / "w.npz", v)
    src = features.load_source(f"imagenet:{tmp_path / 'w.npz'}")
    assert not src.stand_in and "imagenet" in src.description
    images = phantom_sets[0][0][:BATCH]
    a = features.extract_features(src, images, BATCH, progress=False)
    b = features.extract_features("random", images, BATCH, progress=False)
    assert np.isfinite(a).all() and not np.allclose(a, b)
    assert "stand-in" in features.load_source("random").description
    with pytest.raises(ValueError, match="in_domain"):
        features.load_source("in_domain")
    with pytest.raises(ValueError, match="unknown feature source"):
        features.load_source("vgg")


def test_in_domain_source_is_trained_on_the_real_training_set_only(phantom_sets, monkeypatch):
    """Plumbing only: the training itself is checked by
    test_in_domain_training_is_the_global_batch_step_on_every_device."""
    train, test = phantom_sets
    seen = {}

    def fake_train(images, grades, **kw):
        seen.update(images=images, grades=grades, **kw)
        return resnet18.init_variables(1)

    def fake_features(arrays, source, batch_size, progress):  # skip the ResNet pass
        rng = np.random.default_rng(0)
        return [rng.normal(size=(len(a), 512)) for a in arrays], -1

    monkeypatch.setattr(features, "train_in_domain", fake_train)
    monkeypatch.setattr(report, "_features_once", fake_features)
    extra = tuple(np.concatenate([a, b]) for a, b in zip(train, train))
    summary = report.run_experiment({"+ GAN": extra, "Real only": train}, test, "in_domain:2",
                                    batch_size=BATCH, n_bootstrap=50, progress=False)
    np.testing.assert_array_equal(seen["images"], train[0])
    np.testing.assert_array_equal(seen["grades"], train[1])
    assert seen["epochs"] == 2 and seen["seed"] == 0
    assert summary["baseline"] == "Real only"
    assert summary["feature_source"]["description"].startswith("in_domain")
    assert not summary["feature_source"]["stand_in"]


def test_in_domain_training_is_the_global_batch_step_on_every_device():
    """train_in_domain runs the sharded train step on the 4 test devices; its result equals
    one Adam step on the whole batch in one plain program: BatchNorm's statistics are the
    global batch's (without the sync, each device would normalise its quarter)."""
    import jax
    import optax

    from fproi_jax.train import state as state_lib

    rng = np.random.default_rng(0)
    grades = np.array([0, 1] * 8)
    images = rng.random((16, 32, 32, 1)).astype(np.float32) * 0.3
    images[grades == 0, 8:24, 8:24] += 0.6   # HGG: a bright square
    trained = features.train_in_domain(images, grades, epochs=1, batch_size=16, flip=False,
                                       progress=False)

    method = features.GradeClassifierMethod(flip=False)
    optimizer = optax.adam(1e-3)
    state = state_lib.create_train_state(method, optimizer, jax.random.PRNGKey(0), 32)
    params, stats = state.params["C"], state.batch_stats["C"]

    def loss(p):
        logits, updated = features._GradeClassifier().apply(
            {"params": p, "batch_stats": stats}, images, train=True, mutable=["batch_stats"])
        bce = optax.sigmoid_binary_cross_entropy(logits, (grades == 0).astype(np.float32))
        return bce.mean(), updated["batch_stats"]

    (_, stats), grads = jax.value_and_grad(loss, has_aux=True)(params)
    updates, _ = optimizer.update(grads, state.opt_state["C"], params)
    params = optax.apply_updates(params, updates)
    assert jax.tree.structure(trained) == jax.tree.structure(resnet18.init_variables(0))
    # The running statistics come from the initial parameters and the batch: to float noise.
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(trained["batch_stats"]),
                            jax.tree.leaves(stats["backbone"])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=str(path))
    # Adam's first step moves each parameter by lr = 1e-3 times the sign of its gradient,
    # so float noise in a near-zero gradient can flip one by up to 2e-3.
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(trained["params"]),
                            jax.tree.leaves(params["backbone"])):
        np.testing.assert_allclose(a, b, rtol=0, atol=2.1e-3, err_msg=str(path))
    assert np.abs(trained["batch_stats"]["bn1"]["mean"]).max() > 0.01   # moved from 0
