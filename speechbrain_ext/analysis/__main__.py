"""``python -m speechbrain_ext.analysis <verb> ...``: the analyses of the papers, one verb each.

Every verb writes its numbers (CSV/JSON) and its figure (PNG) into ``--out``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# verb -> module of speechbrain_ext.analysis; each module has add_arguments(parser) and run(args)
VERBS = {
    "embed": "embed",
    "probe": "probe",
    "asr-ser": "asr_ser",
    "compare": "compare",
    "attention": "attention",
    "figures": "figures",
    "cross-corpus": "cross_corpus",
}


def build_parser() -> argparse.ArgumentParser:
    """The command line: one sub-command per verb, its help the module's first docstring line."""
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_ext.analysis",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb, module_name in VERBS.items():
        module = importlib.import_module(f"speechbrain_ext.analysis.{module_name}")
        doc = (module.__doc__ or "").strip()
        sub = verbs.add_parser(
            verb,
            help=doc.splitlines()[0] if doc else verb,
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(verb_main=module.run, takes_extra=getattr(module, "TAKES_EXTRA_OPTIONS", False))
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and run the verb; bad input ends with a one-line error."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:  # what follows goes to the runs a verb starts (asr-ser), not to argparse
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    if extra and not args.takes_extra:
        parser.error(f"{args.verb} takes no options after --")
    args.extra = extra
    try:
        args.verb_main(args)
    except (FileNotFoundError, ValueError, KeyError) as err:
        sys.exit(f"{args.verb}: {err}")


if __name__ == "__main__":
    main()
