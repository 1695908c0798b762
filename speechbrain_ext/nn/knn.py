"""kNN interpolation at inference (supcon_knn, eqs. 3-4).

A datastore holds ``(embedding, label)`` pairs of the training and
validation sets. For a query, the ``k`` nearest stored embeddings
(Euclidean) vote: ``p_knn(y|x)`` is the fraction of neighbours labelled
``y`` (scikit-learn's ``KNeighborsClassifier`` with uniform weights, or
inverse-distance weights). The final posterior is
``p = alpha * p_knn + (1 - alpha) * p_model``.

Search ranks stored entries by ``||k||^2 - 2 q.k`` (one ``addmm`` per query
chunk into a reused block, ``||k||^2`` precomputed when entries are added;
``||q||^2`` is added to the ``k`` winners only). On large datastores the
``k`` smallest of a row are found in two steps (:func:`smallest_k`): the
row's columns form interleaved groups of ``_GROUP``, the ``k`` groups with
the smallest minima hold the ``k`` smallest entries, and ``topk`` runs on
those groups' members only, so the full-row ``topk`` (the costly part after
the matrix product) is avoided. Neighbours are those of a plain ``topk`` (ties
aside). :meth:`KNNInterpolator.tune` finds the neighbours once for the
largest ``k`` and scores every ``(k, alpha)`` pair from cumulative votes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, mark_as_transfer, register_checkpoint_hooks

from speechbrain_ext.evaluation.metrics import unweighted_average_recall

_BLOCK_ELEMENTS = 1 << 24  # float32 entries of one (query chunk x datastore) block: 64 MiB
_MIN_ROWS = 128  # fewer query rows per matrix product re-read the datastore too often
_GROUP = 16  # members of each group in the two-step top-k


def smallest_k(block: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.topk(block, k, dim=1, largest=False, sorted=True)`` of a 2-D block, faster on wide rows.

    Column ``j`` of the first ``G * _GROUP`` columns (``G = n // _GROUP``) is in
    group ``j % G``; the ``k`` groups with the smallest minima contain ``k``
    smallest entries of the row (each entry left out has at least ``k``
    group minima at or below it), so ``topk`` over their members plus the
    ``n % _GROUP`` trailing columns gives the row's ``k`` smallest. Equal
    values may come out in another order, or another of equal entries may
    be chosen at the ``k``-th place, as ``topk`` itself does not define it.
    """
    rows, n = block.shape
    groups = n // _GROUP
    if groups < 4 * k:  # narrow rows: the plain top-k is as cheap
        return torch.topk(block, k, dim=1, largest=False, sorted=True)
    main = groups * _GROUP
    minima = block[:, :main].view(rows, _GROUP, groups).amin(dim=1)  # (rows, groups)
    chosen = torch.topk(minima, k, dim=1, largest=False, sorted=False).indices  # (rows, k)
    members = (chosen.unsqueeze(-1) + torch.arange(0, main, groups)).reshape(rows, k * _GROUP)
    if main < n:
        members = torch.cat([members, torch.arange(main, n).expand(rows, n - main)], dim=1)
    values, at = torch.topk(block.gather(1, members), k, dim=1, largest=False, sorted=True)
    return values, members.gather(1, at)


class KNNInterpolator:
    """Datastore, kNN posteriors and their interpolation with a model's posteriors.

    Arguments
    ---------
    n_classes : int
        Number of classes.
    k : int
        Neighbours.
    alpha : float
        Weight of the kNN posterior.
    weights : str
        ``"uniform"`` or ``"distance"`` (inverse distance, as scikit-learn).
    chunk_size : int
        Most queries per distance block (fewer when the block would pass
        ``_BLOCK_ELEMENTS``, but at least ``_MIN_ROWS``).

    Example
    -------
    >>> store = KNNInterpolator(n_classes=2, k=2, alpha=0.5)
    >>> store.add(torch.tensor([[0.0], [0.1], [5.0]]), torch.tensor([0, 0, 1]))
    >>> store.knn_probs(torch.tensor([[0.05], [4.0]])).tolist()
    [[1.0, 0.0], [0.5, 0.5]]
    >>> store.interpolate(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.05]])).tolist()
    [[0.5, 0.5]]
    """

    def __init__(
        self, n_classes: int, k: int = 8, alpha: float = 0.5, weights: str = "uniform", chunk_size: int = 1024
    ):
        if weights not in ("uniform", "distance"):
            raise ValueError(f"weights must be 'uniform' or 'distance', got {weights!r}")
        self.n_classes, self.k, self.alpha, self.weights, self.chunk_size = (
            n_classes,
            int(k),
            float(alpha),
            weights,
            int(chunk_size),
        )
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None
        self._key_norms: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.keys is None else len(self.keys)

    def add(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        """Append ``(n, dim)`` embeddings and their ``(n,)`` labels to the datastore."""
        embeddings = torch.as_tensor(embeddings).detach().float().cpu()
        labels = torch.as_tensor(labels).detach().long().reshape(-1).cpu()
        if len(embeddings) != len(labels):
            raise ValueError(f"{len(embeddings)} embeddings but {len(labels)} labels")
        if len(labels) and (labels.min() < 0 or labels.max() >= self.n_classes):
            raise ValueError(f"labels must lie in [0, {self.n_classes})")
        norms = (embeddings**2).sum(dim=1)  # only the new entries' norms are computed
        self.keys = embeddings.contiguous() if self.keys is None else torch.cat([self.keys, embeddings])
        self.values = labels if self.values is None else torch.cat([self.values, labels])
        self._key_norms = norms if self._key_norms is None else torch.cat([self._key_norms, norms])

    def neighbours(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Distances and datastore indices of the ``k`` nearest entries, nearest first.

        Arguments
        ---------
        queries : torch.Tensor
            ``(q, dim)``.
        k : int
            Neighbours (at most the datastore size).

        Returns
        -------
        distances, indices : torch.Tensor
            ``(q, k)`` each.
        """
        if self.keys is None or len(self.keys) == 0:
            raise RuntimeError("the kNN datastore is empty: call add() first")
        n = len(self.keys)
        k = min(int(k), n)
        queries = torch.as_tensor(queries).detach().float().cpu().contiguous()
        rows = max(1, min(self.chunk_size, len(queries), max(_MIN_ROWS, _BLOCK_ELEMENTS // n)))
        block = torch.empty(rows, n)  # reused by every chunk
        dists = torch.empty(len(queries), k)
        idx = torch.empty(len(queries), k, dtype=torch.long)
        for start in range(0, len(queries), rows):
            q = queries[start : start + rows]
            part = block[: len(q)]
            torch.addmm(self._key_norms, q, self.keys.T, beta=1, alpha=-2, out=part)  # ||k||^2 - 2 q.k
            dists[start : start + len(q)], idx[start : start + len(q)] = smallest_k(part, k)
        dists += (queries**2).sum(dim=1, keepdim=True)
        return dists.clamp_min_(0).sqrt_(), idx

    def _votes(self, distances: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """``(q, k, n_classes)`` per-neighbour votes."""
        onehot = torch.nn.functional.one_hot(self.values[indices], self.n_classes).float()
        if self.weights == "distance":
            w = 1.0 / distances
            exact = torch.isinf(w)
            # As scikit-learn: a query equal to stored points takes only those points.
            w = torch.where(exact.any(dim=1, keepdim=True), exact.float(), w)
            onehot = onehot * w.unsqueeze(-1)
        return onehot

    def knn_probs(self, queries: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """``p_knn``: ``(q, n_classes)`` neighbour vote shares."""
        votes = self._votes(*self.neighbours(queries, k or self.k)).sum(dim=1)
        return votes / votes.sum(dim=1, keepdim=True)

    def interpolate(
        self, model_probs: torch.Tensor, queries: torch.Tensor, k: int | None = None, alpha: float | None = None
    ) -> torch.Tensor:
        """``alpha * p_knn + (1 - alpha) * p_model`` (eq. 4).

        Arguments
        ---------
        model_probs : torch.Tensor
            ``(q, n_classes)`` model posteriors (probabilities, not logs).
        queries : torch.Tensor
            ``(q, dim)`` embeddings of the same items.
        k, alpha : optional
            Override the stored settings.

        Returns
        -------
        torch.Tensor
        """
        alpha = self.alpha if alpha is None else float(alpha)
        model_probs = torch.as_tensor(model_probs).float().cpu()
        if alpha == 0.0:
            return model_probs.clone()
        return alpha * self.knn_probs(queries, k) + (1 - alpha) * model_probs

    def tune(
        self,
        queries: torch.Tensor,
        labels: Sequence[int],
        model_probs: torch.Tensor,
        ks: Sequence[int] = range(1, 33),
        alphas: Sequence[float] = tuple(np.round(np.linspace(0.0, 1.0, 21), 2)),
        score: Callable[[np.ndarray, np.ndarray], float] | None = None,
    ) -> dict:
        """Choose ``k`` and ``alpha`` maximising ``score`` (default UAR) on held-out queries.

        Call it with validation data against a datastore that does not hold
        those same validation items (else each finds itself at distance 0);
        the chosen values are stored on the object.

        Arguments
        ---------
        queries : torch.Tensor
            ``(q, dim)`` validation embeddings.
        labels : sequence of int
            Their labels.
        model_probs : torch.Tensor
            ``(q, n_classes)`` model posteriors.
        ks : sequence of int
            Candidate ``k`` (supcon_knn: 1..32).
        alphas : sequence of float
            Candidate ``alpha`` (0 keeps the model unchanged).
        score : callable, optional
            ``score(y_true, y_pred) -> float``, higher is better.

        Returns
        -------
        dict
            ``k``, ``alpha``, ``score``, ``model_score`` (alpha = 0) and the ``grid`` of scores.
        """
        labels = np.asarray(labels)
        score = score or (lambda y, p: unweighted_average_recall(y, p, self.n_classes))
        ks = sorted({min(int(k), len(self)) for k in ks})
        votes = self._votes(*self.neighbours(queries, max(ks))).cumsum(dim=1)  # (q, kmax, C)
        model_probs = torch.as_tensor(model_probs).float().cpu()
        grid = np.zeros((len(ks), len(alphas)))
        for i, k in enumerate(ks):
            knn = votes[:, k - 1]
            knn = knn / knn.sum(dim=1, keepdim=True)
            for j, alpha in enumerate(alphas):
                pred = (alpha * knn + (1 - alpha) * model_probs).argmax(dim=1).numpy()
                grid[i, j] = score(labels, pred)
        best_i, best_j = np.unravel_index(np.argmax(grid), grid.shape)
        self.k, self.alpha = ks[best_i], float(alphas[best_j])
        return {
            "k": self.k,
            "alpha": self.alpha,
            "score": float(grid[best_i, best_j]),
            "model_score": float(score(labels, model_probs.argmax(dim=1).numpy())),
            "ks": list(ks),
            "alphas": [float(a) for a in alphas],
            "grid": grid.round(6).tolist(),
        }

    def state_dict(self) -> dict:
        """Everything needed to rebuild the interpolator (for checkpoints and export)."""
        return {
            "n_classes": self.n_classes,
            "k": self.k,
            "alpha": self.alpha,
            "weights": self.weights,
            "keys": self.keys,
            "values": self.values,
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> KNNInterpolator:
        """Inverse of :meth:`state_dict`."""
        obj = cls(state["n_classes"], state["k"], state["alpha"], state["weights"])
        if state["keys"] is not None:
            obj.add(state["keys"], state["values"])
        return obj


@register_checkpoint_hooks
class KNNDatastore:
    """The tuned kNN interpolation an exported model carries (``knn.ckpt``): its datastore, ``k`` and ``alpha``.

    ``hub export`` packs a run's ``knn_datastore.pt`` (train + valid
    embeddings, ``k`` and ``alpha`` tuned on validation) when the run has one;
    the inference interfaces then return ``p = alpha p_knn + (1 - alpha) p_model``
    as the run's ``knn/test_report.json`` scored it.

    Example
    -------
    >>> import tempfile, pathlib
    >>> store = KNNInterpolator(2, k=1, alpha=1.0)
    >>> store.add(torch.tensor([[0.0], [1.0]]), torch.tensor([0, 1]))
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "knn.ckpt"
    >>> torch.save(store.state_dict(), path)
    >>> knn = KNNDatastore()
    >>> knn.load(path)
    >>> knn(torch.log(torch.tensor([[0.9, 0.1]])), torch.tensor([[0.9]])).exp().round(decimals=3).tolist()
    [[0.0, 1.0]]
    """

    def __init__(self):
        self.interpolator: KNNInterpolator | None = None

    @mark_as_saver
    def save(self, path) -> None:
        torch.save(self.interpolator.state_dict(), path)

    @mark_as_loader
    def load(self, path, end_of_epoch: bool = False) -> None:
        self.interpolator = KNNInterpolator.from_state_dict(torch.load(path, map_location="cpu", weights_only=False))

    @mark_as_transfer
    def transfer(self, path) -> None:
        self.load(path)

    def __call__(self, log_probs: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """Interpolated log-probabilities of a batch, from the model's log-probabilities and its head-input embeddings."""
        if self.interpolator is None:
            raise RuntimeError("KNNDatastore: no datastore loaded (knn.ckpt)")
        probs = self.interpolator.interpolate(log_probs.detach().float().exp().cpu(), embeddings.detach().float().cpu())
        return torch.log(probs.clamp_min(1e-12)).to(log_probs.device)
