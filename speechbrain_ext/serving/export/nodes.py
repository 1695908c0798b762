"""The training YAML's ruamel nodes as the export reads and trims them: which class a node builds, the nodes below it.

The export edits these nodes in place (:mod:`~speechbrain_ext.serving.export.document`) and writes them back
with :func:`~speechbrain_ext.utils.hyperparams.dump_yaml`, so the inference YAML holds the very nodes the run
trained.
"""

from __future__ import annotations

from speechbrain_ext.serving.model_interface import EXPORTED_MODULE

SSL_ENCODER = "speechbrain_ext.nn.encoders.SSLEncoder"
TEXT_ENCODER = "speechbrain_ext.nn.text.TranscriptEncoder"
BAYES_STAGE = "speechbrain_ext.training.post_training.BayesianHeadStage"


def node_class(node) -> str:
    """The class path a ``!new:`` node builds (``""`` for any other node)."""
    tag = getattr(node, "tag", None)
    return str(getattr(tag, "value", "") or "").removeprefix("!new:")


def nodes_of(node, kind: str):
    """Every node below ``node`` (itself included) built by the class ``kind``, each once (in an exported YAML,
    ``custom_interface.<Name>`` builds the class of that name)."""
    kinds = {kind, f"{EXPORTED_MODULE}.{kind.rpartition('.')[2]}"}
    seen, stack = set(), [node]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if node_class(item) in kinds:
            yield item
        if hasattr(item, "values"):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def detach(node) -> None:
    """Remove the training YAML's comments and anchors from a node and everything below it.

    Comments would land in odd places of the inference YAML, and anchor names
    of different runs' files may collide; ruamel names the nodes that are
    shared in the new document itself.
    """
    if hasattr(node, "ca"):
        node.ca.items.clear()
        node.ca.comment = None
    if getattr(getattr(node, "anchor", None), "value", None):
        node.anchor.value = None
    children = node.values() if hasattr(node, "values") else node if isinstance(node, list) else []
    for child in children:
        detach(child)


def strings_of(node):
    """Every string below ``node`` (itself included)."""
    if isinstance(node, str):
        yield node
    elif hasattr(node, "values"):
        for child in node.values():
            yield from strings_of(child)
    elif isinstance(node, list):
        for child in node:
            yield from strings_of(child)
