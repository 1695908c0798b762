"""A recipe's HyperPyYAML read without building it: the one home of ruamel's round-trip YAML.

:func:`plain_values` is how every part of the collection reads a YAML file's
values (a recipe's hparams before the run, a run's saved ``hyperparams.yaml``,
an exported model's inference YAML): overrides and references resolved,
nothing built. Tagged nodes (``!new:`` ...) stay ruamel nodes, which the
exporter (:mod:`speechbrain_ext.serving.export`) edits and writes back with
:func:`load_yaml` and :func:`dump_yaml`; :func:`to_plain` turns any of them
into plain Python.
"""

from __future__ import annotations

import io
import json
import os

from hyperpyyaml import resolve_references
from ruamel.yaml import YAML


def plain_values(hparams_file: str | os.PathLike, overrides: str | dict | None = None) -> dict:
    """The YAML's values with overrides and references resolved, without building any object.

    Tagged nodes (``!new:`` ...) stay unbuilt ruamel nodes; plain values are
    usable as they are.

    Arguments
    ---------
    hparams_file : str or PathLike
        The HyperPyYAML file.
    overrides : str or dict, optional
        Overrides, as SpeechBrain's command line gives them or as a dict.

    Returns
    -------
    dict
        The top-level mapping (a ruamel ``CommentedMap``).

    Example
    -------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "hparams.yaml"
    >>> _ = path.write_text("lr: 0.1\\nhead_lr: !ref <lr> * 2\\nmodel: !new:torch.nn.Linear\\n    in_features: 2\\n")
    >>> values = plain_values(path, {"lr": 0.5})
    >>> values["head_lr"], values["model"].tag.value, to_plain(values["model"])
    (1.0, '!new:torch.nn.Linear', {'in_features': 2})
    """
    with open(hparams_file, encoding="utf-8") as handle:
        try:
            text = resolve_references(handle, overrides or {}).getvalue()
        except (ValueError, KeyError) as err:
            raise ValueError(f"{hparams_file}: {err}") from None
    return load_yaml(text)


def load_yaml(text: str):
    """YAML text as ruamel round-trip nodes (tags, anchors and comments kept), without resolving anything.

    Example
    -------
    >>> node = load_yaml("m: !new:torch.nn.Linear\\n    in_features: 2\\n")["m"]
    >>> node.tag.value, node["in_features"]
    ('!new:torch.nn.Linear', 2)
    """
    return YAML(typ="rt").load(text)


def dump_yaml(document) -> str:
    """Round-trip nodes (from :func:`plain_values` or :func:`load_yaml`) back to YAML text.

    Example
    -------
    >>> dump_yaml(load_yaml("m: !new:torch.nn.Linear\\n  in_features: 2\\n"))
    'm: !new:torch.nn.Linear\\n  in_features: 2\\n'
    """
    buffer = io.StringIO()
    YAML(typ="rt").dump(document, buffer)
    return buffer.getvalue()


def to_plain(value):
    """ruamel containers (and anything else) to plain Python, as JSON holds it: tags dropped, other objects as strings.

    Example
    -------
    >>> to_plain(load_yaml("a: [1, 2]\\nb: {c: x}\\n"))
    {'a': [1, 2], 'b': {'c': 'x'}}
    """
    return json.loads(json.dumps(value, default=str))
