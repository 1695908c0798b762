"""BayesianLinear and uncertainty helpers against torch.distributions and naive loops."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score
from speechbrain.nnet.linear import Linear as SBLinear
from torch.distributions import Normal, kl_divergence

from speechbrain_ext.nn.bayesian import BayesianLinear, bayesian_kl_loss, fit_bayesian_head
from speechbrain_ext.nn.uncertainty import confidence_by_correctness, expected_calibration_error, mc_predictive


def _randomise(layer, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (layer.weight_mu, layer.bias_mu):
            p.copy_(torch.randn(p.shape, generator=g))
        for p in (layer.weight_log_sigma, layer.bias_log_sigma):
            p.copy_(torch.randn(p.shape, generator=g) * 0.5 - 1.0)


@pytest.mark.parametrize("per_weight", [False, True])
def test_kl_matches_torch_distributions(per_weight):
    torch.manual_seed(1)
    if per_weight:
        layer = BayesianLinear(
            6, 3, prior_mu=torch.randn(3, 6), prior_sigma=0.3, prior_bias_mu=torch.randn(3), prior_bias_sigma=0.2
        )
    else:
        layer = BayesianLinear(6, 3, prior_mu=0.1, prior_sigma=0.3)
    _randomise(layer)
    q_w = Normal(layer.weight_mu, layer.weight_log_sigma.exp())
    p_w = Normal(layer.prior_weight_mu.expand(3, 6), layer.prior_weight_log_sigma.exp().expand(3, 6))
    q_b = Normal(layer.bias_mu, layer.bias_log_sigma.exp())
    p_b = Normal(layer.prior_bias_mu.expand(3), layer.prior_bias_log_sigma.exp().expand(3))
    expected = kl_divergence(q_w, p_w).sum() + kl_divergence(q_b, p_b).sum()
    assert layer.kl_divergence("sum").item() == pytest.approx(expected.item(), rel=1e-5)
    assert layer.kl_divergence("mean").item() == pytest.approx(expected.item() / 21, rel=1e-5)
    # across several layers, "mean" divides by the total parameter count (torchbnn)
    other = BayesianLinear(3, 2, prior_sigma=0.5)
    _randomise(other, seed=3)
    net = torch.nn.Sequential(layer, other)
    total = layer.kl_divergence("sum") + other.kl_divergence("sum")
    assert bayesian_kl_loss(net, "sum").item() == pytest.approx(total.item(), rel=1e-6)
    assert bayesian_kl_loss(net, "mean").item() == pytest.approx(total.item() / (21 + 8), rel=1e-6)


def test_kl_is_zero_at_the_prior_and_has_gradients():
    layer = BayesianLinear(4, 2, prior_mu=0.0, prior_sigma=0.2)
    with torch.no_grad():
        layer.weight_mu.zero_()
        layer.bias_mu.zero_()
    assert layer.kl_divergence("sum").item() == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        layer.weight_mu.fill_(1.0)
    layer.kl_divergence().backward()
    assert layer.weight_mu.grad.abs().sum() > 0 and layer.weight_log_sigma.grad is not None


def test_samples_have_the_theoretical_mean_and_variance():
    torch.manual_seed(0)
    layer = BayesianLinear(8, 3)
    _randomise(layer)
    x = torch.randn(5, 8)
    out = layer(x, n_samples=40000)
    assert out.shape == (40000, 5, 3)
    mean_expected = x @ layer.weight_mu.T + layer.bias_mu
    var_expected = (x**2) @ layer.weight_log_sigma.exp().pow(2).T + layer.bias_log_sigma.exp().pow(2)
    torch.testing.assert_close(out.mean(0), mean_expected.detach(), atol=0.05, rtol=0.02)
    torch.testing.assert_close(out.var(0), var_expected.detach(), rtol=0.05, atol=1e-3)
    # one sample uses one weight draw for the whole batch: the outputs of two
    # items are correlated through the shared weights (an ensemble member, not noise)
    corr = np.corrcoef(out[:, 0, 0].detach().numpy(), out[:, 1, 0].detach().numpy())[0, 1]
    expected_cov = ((x[0] * x[1]) * layer.weight_log_sigma[0].exp() ** 2).sum() + layer.bias_log_sigma[0].exp() ** 2
    expected_corr = expected_cov / (var_expected[0, 0] * var_expected[1, 0]).sqrt()
    assert corr == pytest.approx(expected_corr.item(), abs=0.03)


def test_sample_variance_shrinks_with_posterior_std():
    torch.manual_seed(0)
    layer = BayesianLinear(8, 3)
    x = torch.randn(4, 8)
    variances = []
    for log_sigma in (-1.0, -3.0, -6.0, -12.0):
        with torch.no_grad():
            layer.weight_log_sigma.fill_(log_sigma)
            layer.bias_log_sigma.fill_(log_sigma)
        variances.append(layer(x, n_samples=500).var(0).mean().item())
    assert all(a > 10 * b for a, b in zip(variances, variances[1:]))
    assert variances[-1] < 1e-9


def test_mean_mode_equals_average_of_samples():
    torch.manual_seed(0)
    layer = BayesianLinear(8, 4, prior_sigma=0.2)
    x = torch.randn(6, 8)
    average = layer(x, n_samples=50000).mean(0)
    layer.mean_weights = True
    torch.testing.assert_close(average, layer(x), atol=0.01, rtol=0)
    assert torch.equal(layer(x, n_samples=3)[2], layer(x))


@pytest.mark.parametrize("make", [lambda: torch.nn.Linear(16, 5), lambda: SBLinear(input_size=16, n_neurons=5)])
@pytest.mark.parametrize("prior", ["scalar", "per_weight"])
def test_from_linear(make, prior):
    torch.manual_seed(0)
    linear = make()
    weight = getattr(linear, "w", linear).weight.detach()
    bayes = BayesianLinear.from_linear(linear, prior=prior)
    x = torch.randn(7, 16)
    bayes.mean_weights = True
    torch.testing.assert_close(bayes(x), linear(x))
    if prior == "scalar":
        assert bayes.prior_weight_mu.item() == pytest.approx(weight.mean().item())
        assert bayes.prior_weight_log_sigma.exp().item() == pytest.approx(weight.std().item(), rel=1e-5)
    else:
        torch.testing.assert_close(bayes.prior_weight_mu, weight)
    # the posterior starts at the prior's std (torchbnn), so sampled outputs differ from the linear ones
    bayes.mean_weights = False
    assert not torch.allclose(bayes(x), linear(x))


def test_from_linear_rejects_unknown_prior():
    with pytest.raises(ValueError, match="per_weight"):
        BayesianLinear.from_linear(torch.nn.Linear(2, 2), prior="layerwise")


def test_mc_predictive_matches_naive_numpy():
    torch.manual_seed(0)
    logits = torch.randn(30, 4, 3) * 2
    pred = mc_predictive(logits)
    probs = torch.softmax(logits, -1).numpy().astype(np.float64)
    for b in range(4):
        mean = probs[:, b].mean(0)
        entropy = -sum(p * math.log(p) for p in mean)
        expected_entropy = np.mean([-sum(p * math.log(p) for p in probs[s, b]) for s in range(30)])
        assert pred.entropy[b].item() == pytest.approx(entropy, rel=1e-4)
        assert pred.mutual_information[b].item() == pytest.approx(entropy - expected_entropy, abs=1e-5)
        np.testing.assert_allclose(pred.std_probs[b].numpy(), probs[:, b].std(0), rtol=1e-4, atol=1e-6)
        assert pred.confidence[b].item() == pytest.approx(mean.max(), rel=1e-5)


def test_ece_matches_naive_loop():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=500)
    targets = rng.integers(0, 4, 500)
    n_bins = 10
    conf, pred = probs.max(1), probs.argmax(1)
    ece = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        sel = [i for i in range(500) if lo < conf[i] <= hi]
        if sel:
            acc = np.mean([pred[i] == targets[i] for i in sel])
            ece += len(sel) / 500 * abs(acc - np.mean(conf[sel]))
    assert expected_calibration_error(probs, targets, n_bins) == pytest.approx(ece, abs=1e-9)
    # a perfectly confident and always right model is calibrated
    assert expected_calibration_error(np.eye(3), [0, 1, 2]) == 0.0


def test_confidence_by_correctness():
    stats = confidence_by_correctness([[0.9, 0.1], [0.7, 0.3], [0.6, 0.4], [0.2, 0.8]], [0, 0, 1, 1])
    assert stats["correct"] == {
        "n": 3,
        "mean": pytest.approx(0.8),
        "std": pytest.approx(np.std([0.9, 0.7, 0.8]), abs=1e-6),
        "median": 0.8,
    }
    assert stats["wrong"]["n"] == 1 and stats["wrong"]["mean"] == 0.6


@pytest.mark.parametrize("prior", ["scalar", "per_weight"])
def test_yaml_built_layer_loads_either_prior(prior):
    """The recipe's sequence: a YAML-built layer (scalar prior buffers) loads from_linear(..., prior) of the trained head."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(6, 4, bias=False)
    layer = BayesianLinear(6, 4, bias=False)
    layer.load_state_dict(BayesianLinear.from_linear(linear, prior=prior).state_dict())
    weight = linear.weight.detach()
    prior_mu = weight if prior == "per_weight" else torch.full_like(weight, float(weight.mean()))
    prior_sigma = torch.full_like(weight, float(weight.std()))
    assert torch.equal(layer.prior_weight_mu.expand_as(weight), prior_mu)
    posterior = Normal(layer.weight_mu.detach(), layer.weight_log_sigma.detach().exp())
    naive = sum(
        float(
            kl_divergence(Normal(posterior.loc[i, j], posterior.scale[i, j]), Normal(prior_mu[i, j], prior_sigma[i, j]))
        )
        for i in range(4)
        for j in range(6)
    )
    assert float(layer.kl_divergence(reduction="sum")) == pytest.approx(naive, rel=1e-5)


def _imbalanced_split(generator, n, shift=0.8):
    """16-dim embeddings, ~10 % positives whose first four dimensions are shifted."""
    y = (torch.rand(n, generator=generator) < 0.1).long()
    x = torch.randn(n, 16, generator=generator)
    x[:, :4] += shift * y[:, None]
    return x, y


def test_svi_keeps_stage_one_class_weights_on_an_imbalanced_task():
    """Issue 22: SVI with the task's balanced weights keeps stage one's UAR; plain NLL drifts to the majority class."""
    g = torch.Generator().manual_seed(0)
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = (_imbalanced_split(g, n) for n in (1000, 500, 1000))
    # stage one, written out in plain torch: a linear head on inverse-frequency weighted NLL (ClassificationTask's "balanced")
    weights = len(train_y) / (2 * torch.bincount(train_y, minlength=2).float())
    torch.manual_seed(0)
    linear = torch.nn.Linear(16, 2)
    optimizer = torch.optim.Adam(linear.parameters(), lr=0.05)
    for _ in range(100):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(linear(train_x), train_y, weight=weights).backward()
        optimizer.step()
    with torch.no_grad():
        stage_one = linear(test_x).argmax(1).numpy()
    stage_one_uar = balanced_accuracy_score(test_y.numpy(), stage_one)
    assert stage_one_uar > 0.7 and stage_one.mean() > 0.2  # balanced: far more positives predicted than the 10 % prior

    def bayes_test_predictions(class_weights):
        torch.manual_seed(0)
        layer = BayesianLinear.from_linear(linear)
        fit_bayesian_head(
            layer,
            train_x,
            train_y,
            valid_x,
            valid_y,
            epochs=4,
            lr=0.01,
            batch_size=32,
            valid_samples=50,
            class_weights=class_weights,
        )
        with torch.no_grad():
            return torch.softmax(layer(test_x, n_samples=200), dim=-1).mean(0).argmax(1).numpy()

    weighted, unweighted = bayes_test_predictions(weights), bayes_test_predictions(None)
    print(
        "\nUAR (predicted positive): "
        + ", ".join(
            f"{name} {balanced_accuracy_score(test_y.numpy(), p):.3f} ({p.mean():.1%})"
            for name, p in (("stage one", stage_one), ("SVI weighted", weighted), ("SVI unweighted", unweighted))
        )
    )
    assert balanced_accuracy_score(test_y.numpy(), weighted) == pytest.approx(stage_one_uar, abs=0.02)
    # the bug: without the weights, SVI refits towards the majority class (the best of its epochs included)
    assert balanced_accuracy_score(test_y.numpy(), unweighted) < stage_one_uar - 0.08
    assert unweighted.mean() < stage_one.mean() / 2


def test_svi_data_term_is_the_weighted_mean_nll():
    """With KL off, no update and (near) zero posterior std, the logged loss is sum_i w[y_i] nll_i / sum_i w[y_i] (naive numpy)."""
    torch.manual_seed(0)
    x, y = torch.randn(40, 3), torch.tensor([0] * 30 + [1] * 7 + [2] * 3)
    layer = BayesianLinear.from_linear(torch.nn.Linear(3, 3), init_sigma=1e-9)
    weights = torch.tensor([0.5, 2.0, 4.0])
    logits = (x @ layer.weight_mu.T + layer.bias_mu).detach().numpy().astype(np.float64)
    nll = [np.log(np.exp(row).sum()) - row[t] for row, t in zip(logits, y.tolist())]
    w = weights.numpy()[y.numpy()]
    expected = {"weighted": float((w * nll).sum() / w.sum()), "plain": float(np.mean(nll))}
    for name, class_weights in (("weighted", weights), ("plain", None)):
        out = fit_bayesian_head(
            layer,
            x,
            y,
            x,
            y,
            epochs=1,
            lr=0.0,
            batch_size=40,
            kl_weight=0.0,
            train_samples=3,
            valid_samples=2,
            class_weights=class_weights,
        )
        assert out["history"][0]["loss"] == pytest.approx(expected[name], abs=2e-6), name
    assert abs(expected["weighted"] - expected["plain"]) > 0.05  # the two definitions differ on this data


def test_fit_bayesian_head_rejects_bad_class_weights():
    layer, x = BayesianLinear(3, 2), torch.randn(8, 3)
    y = torch.tensor([0, 1] * 4)
    with pytest.raises(ValueError, match="3 values but the layer has 2 classes"):
        fit_bayesian_head(layer, x, y, x, y, epochs=1, class_weights=torch.ones(3))
    with pytest.raises(ValueError, match="classification only"):
        fit_bayesian_head(
            layer, x, torch.rand(8, 2), x, torch.rand(8, 2), epochs=1, kind="regression", class_weights=torch.ones(2)
        )
