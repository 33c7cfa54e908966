"""Shared by the tools: make ``lib/`` importable when posezoo is not installed,
the common command line (``--cfg`` + ``KEY VALUE`` overrides) and one-line errors."""
import argparse
import logging
import os
import sys

LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib")
if LIB not in sys.path:
    sys.path.insert(0, LIB)


def config_parser(doc: str, example: str, cfg_required: bool = True) -> argparse.ArgumentParser:
    """``--cfg X.yaml`` and trailing config overrides; a tool adds its own flags (and, with `cfg_required`
    False, checks itself that --cfg is there when it needs one)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=cfg_required, help="experiment YAML (official HRNet/SimpleBaseline ones load as is)")
    parser.add_argument("opts", nargs=argparse.REMAINDER,
                        help=f"config overrides: KEY VALUE pairs, e.g. {example}")
    return parser


def run(main) -> None:
    """Run a tool's main(); a user error ends in one log line and exit status 1."""
    try:
        main()
    except (ValueError, OSError, RuntimeError, ImportError) as err:
        logging.getLogger("posezoo").error("error: %s", err)
        sys.exit(1)
