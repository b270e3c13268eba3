"""The ``imagenet-captions`` command.

Each subcommand lives in its own module, which provides ``add_arguments(parser)`` and
``run(args, extra) -> int``; it is imported only when chosen, so ``train`` and ``eval`` never pay
for (or need) Beam, and ``--help`` stays fast. ``extra`` holds the arguments this parser did not
know: the Beam pipeline options for the commands that run a pipeline. Every mistake on the command
line, argparse's own (a bad type, a bad choice) included, ends as one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import NoReturn

from imagenet_captions.errors import UsageError

#: name -> (module, one-line help, passes unknown arguments through as Beam options)
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "demo": ("imagenet_captions.demo", "build the bundled sample end to end (no network, no key)", True),
    "build": ("imagenet_captions.build.command", "build caption tables and WebDataset shards", True),
    "validate": (
        "imagenet_captions.shards.validate",
        "check a build's shards, Parquet, sizes and report",
        False,
    ),
    "release": (
        "imagenet_captions.release.publish",
        "make a release of a build: text Parquet, manifest, dataset card, Croissant",
        False,
    ),
    "download": (
        "imagenet_captions.release.download",
        "download a release (or the official 2022 zip), verified and resumable",
        False,
    ),
    "harvest": ("imagenet_captions.flickr.command", "fetch Flickr metadata for ImageNet's URL list", True),
    "train": (
        "imagenet_captions.train.command",
        "train CLIP or the cross-entropy baseline on the shards",
        False,
    ),
    "eval": ("imagenet_captions.eval.command", "accuracy on ImageNet + 5 shifts; eval robustness", False),
}


class CommandParser(argparse.ArgumentParser):
    """argparse, but a bad command line is a :class:`UsageError`: one line and exit 2, as every other
    mistake the commands report (argparse itself prints the whole usage block first)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def main(argv: list[str] | None = None) -> int:
    prog = "imagenet-captions"
    try:
        parser = CommandParser(
            prog=prog,
            description="Build, refresh, ship and study ImageNet-Captions.",
            epilog="Pipeline commands pass any option they do not know to Apache Beam (e.g. --runner, "
            "--direct_num_workers).",
        )
        parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
        sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
        for name, (_, help_text, _) in COMMANDS.items():
            sub.add_parser(name, help=help_text, add_help=False)

        # Two passes: the first finds the command, the second parses with that command's own arguments.
        args, _ = parser.parse_known_args(argv)
        prog = f"imagenet-captions {args.command}"
        module_name, help_text, passes_through = COMMANDS[args.command]
        # Beam's import logs a warning about optional GCP clients to the root logger; it is noise here.
        logging.getLogger().addFilter(lambda r: "apitools not found" not in r.getMessage())
        module = importlib.import_module(module_name)
        command_parser = CommandParser(prog=prog, description=help_text)
        command_parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
        module.add_arguments(command_parser)
        raw = list(sys.argv[1:] if argv is None else argv)
        raw.remove(args.command)
        if passes_through:
            command_args, extra = command_parser.parse_known_args(raw)
        else:
            command_args, extra = command_parser.parse_args(raw), []
        logging.basicConfig(
            level=logging.DEBUG if command_args.verbose or args.verbose else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            datefmt="%H:%M:%S",
        )
        return int(module.run(command_args, extra) or 0)
    except UsageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
