"""Bayesian linear output layer (compare2023_bayes_fusion).

The paper replaces the classifier's linear layer by a mean-field Gaussian
layer trained with stochastic variational inference (torchbnn's
``BayesLinear`` with ``bayesian_kl_loss``): each weight ``w`` has a posterior
``N(mu, sigma)`` with ``sigma = exp(log_sigma)``, sampled by
reparameterisation, and the ELBO adds the closed-form KL divergence to a
Gaussian prior. The prior comes from the linear layer of a first, standard
training run: the mean and standard deviation of its learned weights.

:class:`BayesianLinear` draws ``k`` weight samples in one batched matrix
product, so 500 samples (the paper's Figure 1) cost about one head pass.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def gaussian_kl(
    mu_q: torch.Tensor, log_sigma_q: torch.Tensor, mu_p: torch.Tensor, log_sigma_p: torch.Tensor
) -> torch.Tensor:
    """Element-wise ``KL(N(mu_q, sigma_q) || N(mu_p, sigma_p))`` with log standard deviations.

    Example
    -------
    >>> zero = torch.zeros(1)
    >>> gaussian_kl(zero, zero, zero, zero).item()
    0.0
    >>> round(gaussian_kl(torch.ones(1), zero, zero, zero).item(), 4)
    0.5
    """
    var_ratio = torch.exp(2 * (log_sigma_q - log_sigma_p))
    return log_sigma_p - log_sigma_q + 0.5 * (var_ratio + (mu_q - mu_p) ** 2 * torch.exp(-2 * log_sigma_p)) - 0.5


class BayesianLinear(nn.Module):
    """Linear layer with mean-field Gaussian weights and bias.

    Arguments
    ---------
    input_size : int
        Input feature dimension.
    n_neurons : int
        Output dimension.
    prior_mu : float or torch.Tensor
        Prior mean: a scalar, or a tensor shaped like the weight (per-weight prior).
    prior_sigma : float or torch.Tensor
        Prior standard deviation, scalar or per weight.
    bias : bool
        Whether the layer has a (Bayesian) bias.
    init_sigma : float, optional
        Initial posterior standard deviation; defaults to the prior's, as torchbnn does.
    prior_bias_mu, prior_bias_sigma : float or torch.Tensor, optional
        Bias prior; defaults to the weight prior when scalar, else ``0`` / ``prior_sigma`` mean.
    mean_weights : bool
        Deterministic mode: use the posterior means (for export and reproducible outputs).

    Example
    -------
    >>> torch.manual_seed(0) and None
    >>> layer = BayesianLinear(8, 3, prior_sigma=0.1)
    >>> x = torch.randn(4, 8)
    >>> layer(x).shape, layer(x, n_samples=500).shape
    (torch.Size([4, 3]), torch.Size([500, 4, 3]))
    >>> layer.mean_weights = True
    >>> torch.equal(layer(x), layer(x))
    True
    """

    def __init__(
        self,
        input_size: int,
        n_neurons: int,
        prior_mu: float | torch.Tensor = 0.0,
        prior_sigma: float | torch.Tensor = 0.1,
        bias: bool = True,
        init_sigma: float | None = None,
        prior_bias_mu: float | torch.Tensor | None = None,
        prior_bias_sigma: float | torch.Tensor | None = None,
        mean_weights: bool = False,
    ):
        super().__init__()
        self.input_size, self.n_neurons = input_size, n_neurons
        self.mean_weights = mean_weights
        bound = 1.0 / math.sqrt(input_size)
        self.weight_mu = nn.Parameter(torch.empty(n_neurons, input_size).uniform_(-bound, bound))
        prior_sigma_t = torch.as_tensor(prior_sigma, dtype=torch.float32)
        if init_sigma is None:
            init_sigma = float(prior_sigma_t.mean())
        self.weight_log_sigma = nn.Parameter(torch.full((n_neurons, input_size), math.log(init_sigma)))
        self.register_buffer("prior_weight_mu", torch.as_tensor(prior_mu, dtype=torch.float32).clone())
        self.register_buffer("prior_weight_log_sigma", prior_sigma_t.log().clone())
        if bias:
            self.bias_mu = nn.Parameter(torch.empty(n_neurons).uniform_(-bound, bound))
            self.bias_log_sigma = nn.Parameter(torch.full((n_neurons,), math.log(init_sigma)))
            scalar_prior = self.prior_weight_mu.dim() == 0
            if prior_bias_mu is None:
                prior_bias_mu = self.prior_weight_mu.clone() if scalar_prior else 0.0
            if prior_bias_sigma is None:
                prior_bias_sigma = prior_sigma_t.clone() if scalar_prior else float(prior_sigma_t.mean())
            self.register_buffer("prior_bias_mu", torch.as_tensor(prior_bias_mu, dtype=torch.float32).clone())
            self.register_buffer(
                "prior_bias_log_sigma", torch.as_tensor(prior_bias_sigma, dtype=torch.float32).log().clone()
            )
        else:
            self.register_parameter("bias_mu", None)
            self.register_parameter("bias_log_sigma", None)

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        prior: str = "scalar",
        prior_sigma: float | None = None,
        init_sigma: float | None = None,
        mean_weights: bool = False,
    ) -> BayesianLinear:
        """Build the layer from a trained ``nn.Linear`` (or SpeechBrain ``Linear``).

        Posterior means start at the linear weights, so the mean-weights mode
        reproduces the linear layer exactly.

        Arguments
        ---------
        linear : torch.nn.Module
            ``torch.nn.Linear`` or ``speechbrain.nnet.linear.Linear`` (its ``.w``).
        prior : str
            ``"scalar"`` (the paper): prior mean and std are the mean and std of
            the learned weights. ``"per_weight"``: each weight's prior mean is its
            trained value, with a shared std (``prior_sigma``, default the weights' std).
        prior_sigma : float, optional
            Overrides the prior standard deviation.
        init_sigma : float, optional
            Initial posterior std (default: the prior std).
        mean_weights : bool
            Start in deterministic mode.

        Returns
        -------
        BayesianLinear

        Example
        -------
        >>> lin = torch.nn.Linear(5, 2)
        >>> bayes = BayesianLinear.from_linear(lin, mean_weights=True)
        >>> x = torch.randn(3, 5)
        >>> torch.allclose(bayes(x), lin(x))
        True
        """
        linear = getattr(linear, "w", linear)
        weight = linear.weight.detach().float()
        bias = linear.bias.detach().float() if linear.bias is not None else None
        sigma = float(weight.std()) if prior_sigma is None else float(prior_sigma)
        if prior == "scalar":
            prior_mu, prior_bias_mu = float(weight.mean()), None
        elif prior == "per_weight":
            prior_mu = weight.clone()
            prior_bias_mu = bias.clone() if bias is not None else None
        else:
            raise ValueError(f"prior must be 'scalar' or 'per_weight', got {prior!r}")
        layer = cls(
            weight.shape[1],
            weight.shape[0],
            prior_mu=prior_mu,
            prior_sigma=sigma,
            bias=bias is not None,
            init_sigma=init_sigma,
            prior_bias_mu=prior_bias_mu,
            mean_weights=mean_weights,
        )
        with torch.no_grad():
            layer.weight_mu.copy_(weight)
            if bias is not None:
                layer.bias_mu.copy_(bias)
        return layer.to(linear.weight.device)

    PRIOR_BUFFERS = ("prior_weight_mu", "prior_weight_log_sigma", "prior_bias_mu", "prior_bias_log_sigma")

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Take the prior's shape from the state (a layer built with a scalar prior loads a per-weight one)."""
        for name in self.PRIOR_BUFFERS:
            incoming, current = state_dict.get(prefix + name), getattr(self, name, None)
            if incoming is not None and current is not None and incoming.shape != current.shape:
                setattr(self, name, torch.empty_like(incoming, device=current.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor, n_samples: int | None = None) -> torch.Tensor:
        """Apply the layer with sampled (or mean) weights.

        Arguments
        ---------
        x : torch.Tensor
            ``(..., input_size)``.
        n_samples : int, optional
            ``None``: one weight sample, output ``(..., n_neurons)``. ``k``:
            ``k`` independent weight samples in one batched product, output
            ``(k, ..., n_neurons)``. In mean-weights mode every sample is the mean.

        Returns
        -------
        torch.Tensor
        """
        squeeze = n_samples is None
        k = 1 if squeeze else int(n_samples)
        if self.mean_weights:
            out = nn.functional.linear(x, self.weight_mu, self.bias_mu)
            return out if squeeze else out.unsqueeze(0).expand(k, *out.shape)
        weight = self.weight_mu + torch.exp(self.weight_log_sigma) * torch.randn(
            k, *self.weight_mu.shape, device=x.device, dtype=self.weight_mu.dtype
        )
        flat = x.reshape(-1, self.input_size)
        out = torch.matmul(flat, weight.transpose(1, 2))  # (k, N, out)
        if self.bias_mu is not None:
            bias = self.bias_mu + torch.exp(self.bias_log_sigma) * torch.randn(
                k, self.n_neurons, device=x.device, dtype=self.bias_mu.dtype
            )
            out = out + bias.unsqueeze(1)
        out = out.reshape(k, *x.shape[:-1], self.n_neurons)
        return out.squeeze(0) if squeeze else out

    def sample(self, x: torch.Tensor, n: int, seed: int | None = None) -> torch.Tensor:
        """``n`` sets of outputs, each from its own posterior weight draw: the one way to draw MC outputs.

        The post-training stage's reports and the inference interface's
        uncertainty both draw here. Draws are posterior samples even in
        mean-weights mode (the mode comes back after), without gradients,
        with ``x`` moved to the layer's device.

        Arguments
        ---------
        x : torch.Tensor
            ``(..., input_size)``.
        n : int
            Number of weight draws.
        seed : int, optional
            ``torch.manual_seed(seed)`` before drawing, so a call draws the same
            weights every time; only the CPU generator's state is restored after
            (a CUDA generator stays seeded). ``None``: the draws continue torch's stream.

        Returns
        -------
        torch.Tensor
            ``(n, ..., n_neurons)`` outputs before any activation, on the layer's device.

        Example
        -------
        >>> layer = BayesianLinear(8, 3, mean_weights=True)
        >>> x = torch.randn(4, 8)
        >>> draws = layer.sample(x, 100, seed=0)
        >>> draws.shape, bool(draws.std(dim=0).min() > 0), layer.mean_weights
        (torch.Size([100, 4, 3]), True, True)
        >>> torch.equal(draws, layer.sample(x, 100, seed=0))
        True
        """
        mean_mode, self.mean_weights = self.mean_weights, False
        try:
            with torch.no_grad():
                x = x.to(self.weight_mu.device)
                if seed is None:
                    return self(x, n_samples=n)
                with torch.random.fork_rng(devices=[]):  # the caller's CPU stream is left as it was
                    torch.manual_seed(seed)
                    return self(x, n_samples=n)
        finally:
            self.mean_weights = mean_mode

    def kl_divergence(self, reduction: str = "mean") -> torch.Tensor:
        """Closed-form KL from the posterior to the prior.

        Arguments
        ---------
        reduction : str
            ``"sum"`` over all weights and biases, or ``"mean"`` (divided by
            their number, torchbnn's default).

        Returns
        -------
        torch.Tensor
            Scalar.
        """
        kl = gaussian_kl(self.weight_mu, self.weight_log_sigma, self.prior_weight_mu, self.prior_weight_log_sigma).sum()
        count = self.weight_mu.numel()
        if self.bias_mu is not None:
            kl = (
                kl + gaussian_kl(self.bias_mu, self.bias_log_sigma, self.prior_bias_mu, self.prior_bias_log_sigma).sum()
            )
            count += self.bias_mu.numel()
        if reduction == "sum":
            return kl
        if reduction == "mean":
            return kl / count
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")

    def extra_repr(self) -> str:
        """Sizes and mode, for ``print(model)``."""
        return f"input_size={self.input_size}, n_neurons={self.n_neurons}, mean_weights={self.mean_weights}"


def bayesian_kl_loss(module: nn.Module, reduction: str = "mean") -> torch.Tensor:
    """KL of every :class:`BayesianLinear` inside ``module``, as torchbnn's ``bayesian_kl_loss``.

    Arguments
    ---------
    module : torch.nn.Module
        Model (or ModuleDict) holding Bayesian layers.
    reduction : str
        ``"sum"``, or ``"mean"`` over the number of Bayesian parameters.

    Returns
    -------
    torch.Tensor

    Example
    -------
    >>> net = torch.nn.Sequential(BayesianLinear(4, 2), torch.nn.ReLU(), BayesianLinear(2, 2))
    >>> bayesian_kl_loss(net).item() >= 0
    True
    """
    layers = [m for m in module.modules() if isinstance(m, BayesianLinear)]
    if not layers:
        raise ValueError("the module holds no BayesianLinear layer")
    total = sum(layer.kl_divergence("sum") for layer in layers)
    if reduction == "sum":
        return total
    if reduction == "mean":
        count = sum(
            layer.weight_mu.numel() + (layer.bias_mu.numel() if layer.bias_mu is not None else 0) for layer in layers
        )
        return total / count
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


def fit_bayesian_head(
    layer: BayesianLinear,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    valid_x: torch.Tensor,
    valid_y: torch.Tensor,
    epochs: int = 30,
    lr: float = 1e-3,
    batch_size: int = 64,
    kl_weight: float = 0.01,
    train_samples: int = 4,
    valid_samples: int = 100,
    progress: bool = False,
    kind: str = "classification",
    class_weights: torch.Tensor | None = None,
) -> dict:
    """Stochastic variational inference of a Bayesian output layer on fixed embeddings.

    Stage two of compare2023_bayes_fusion, with the encoder frozen (a design
    choice here: the paper does not say so), so its embeddings are computed
    once and the layer is trained on them. The loss
    is the negative ELBO with torchbnn's scaling, ``data term + kl_weight * KL /
    n_params``, the data term averaged over ``train_samples`` weight draws per
    batch (one batched product): the NLL of the softmax for classification
    (class-weighted as stage one's when ``class_weights`` is given), the MSE
    of the sigmoid outputs for (intensity) regression. The state with
    the best validation score of the ``valid_samples``-sample MC mean is kept:
    UAR, or the mean Spearman over outputs.

    Arguments
    ---------
    layer : BayesianLinear
        The head, usually :meth:`BayesianLinear.from_linear` of the trained linear layer.
    train_x, valid_x : torch.Tensor
        ``(n, input_size)`` embeddings.
    train_y, valid_y : torch.Tensor
        ``(n,)`` class indices, or ``(n, n_outputs)`` intensities in [0, 1].
    epochs, lr, batch_size : int, float, int
        Adam on shuffled mini-batches.
    kl_weight : float
        Weight of the (mean) KL term.
    train_samples, valid_samples : int
        Weight draws per training batch and for validation.
    progress : bool
        Show a progress bar over epochs.
    kind : str
        ``classification`` (softmax, NLL, UAR) or ``regression`` (sigmoid, MSE, mean Spearman).
    class_weights : torch.Tensor, optional
        ``(n_classes,)`` weights of each class's NLL, the task's stage-one
        weights (``class_weights: balanced``): the data term is then the
        weighted mean ``sum_i w[y_i] * nll_i / sum_i w[y_i]``, as torch's
        weighted ``nll_loss``. Without them SVI refits an imbalanced task
        towards its majority class. Classification only.

    Returns
    -------
    dict
        ``best_epoch``, ``valid_UAR`` (or ``valid_mean_spearman``) and the per-epoch ``history``.

    Example
    -------
    >>> torch.manual_seed(0) and None
    >>> x = torch.randn(200, 4); y = (x[:, 0] > 0).long()
    >>> linear = torch.nn.Linear(4, 2)
    >>> out = fit_bayesian_head(BayesianLinear.from_linear(linear), x[:150], y[:150], x[150:], y[150:], epochs=20, lr=0.05)
    >>> out["valid_UAR"] > 0.9
    True
    >>> balanced = torch.tensor([1.0, 1.0])  # e.g. ClassificationTask.weights
    >>> fit_bayesian_head(BayesianLinear.from_linear(linear), x[:150], y[:150], x[150:], y[150:], epochs=2, class_weights=balanced)["best_epoch"] >= 1
    True
    >>> t = torch.sigmoid(x[:, :2] * 2)  # two intensities driven by the embeddings
    >>> out = fit_bayesian_head(BayesianLinear.from_linear(linear), x[:150], t[:150], x[150:], t[150:], epochs=20, lr=0.05, kind="regression")
    >>> out["valid_mean_spearman"] > 0.9
    True
    """
    from tqdm import tqdm

    from speechbrain_ext.evaluation.metrics import spearman_per_column, unweighted_average_recall

    if kind not in ("classification", "regression"):
        raise ValueError(f"kind must be 'classification' or 'regression', got {kind!r}")
    classification = kind == "classification"
    n_outputs = layer.n_neurons
    if class_weights is not None:
        if not classification:
            raise ValueError("class_weights apply to classification only (kind='regression' got them)")
        class_weights = torch.as_tensor(class_weights, dtype=train_x.dtype, device=train_x.device).reshape(-1)
        if class_weights.numel() != n_outputs:
            raise ValueError(f"class_weights has {class_weights.numel()} values but the layer has {n_outputs} classes")
    if classification:
        train_y, valid_y = train_y.reshape(-1).long(), valid_y.reshape(-1).long()
        metric_name = "valid_UAR"
    else:
        train_y, valid_y = train_y.float(), valid_y.float()
        metric_name = "valid_mean_spearman"
    optimizer = torch.optim.Adam(layer.parameters(), lr=lr)
    best_score, best_state, best_epoch, history = -float("inf"), None, 0, []
    mean_mode, layer.mean_weights = layer.mean_weights, False  # SVI samples weights; the caller's mode comes back after
    for epoch in tqdm(range(1, epochs + 1), desc="Bayesian head", disable=not progress):
        layer.train()
        total, batches = 0.0, 0
        for index in torch.randperm(len(train_y)).split(batch_size):
            outputs = layer(train_x[index], n_samples=train_samples)  # (k, b, outputs), one batched product
            if classification:
                # weighted 'mean' over all draws: the mean over draws of each draw's weighted NLL (same targets in every draw)
                data = nn.functional.cross_entropy(
                    outputs.reshape(-1, n_outputs), train_y[index].repeat(train_samples), weight=class_weights
                )
            else:
                data = nn.functional.mse_loss(torch.sigmoid(outputs), train_y[index].expand_as(outputs))
            loss = data + kl_weight * layer.kl_divergence("mean")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, batches = total + loss.item(), batches + 1
        layer.eval()
        with torch.no_grad():
            draws = layer(valid_x, n_samples=valid_samples)
        if classification:
            probs = torch.softmax(draws, dim=-1).mean(dim=0)
            score = unweighted_average_recall(valid_y.tolist(), probs.argmax(dim=1).tolist(), n_outputs)
        else:
            score = spearman_per_column(valid_y.cpu().numpy(), torch.sigmoid(draws).mean(dim=0).cpu().numpy())["mean"]
        history.append({"epoch": epoch, "loss": round(total / max(batches, 1), 6), metric_name: round(score, 6)})
        if score > best_score or best_state is None:
            best_score, best_epoch = score, epoch
            best_state = {k: v.detach().clone() for k, v in layer.state_dict().items()}
    layer.load_state_dict(best_state)
    layer.mean_weights = mean_mode
    return {"best_epoch": best_epoch, metric_name: best_score, "history": history}
