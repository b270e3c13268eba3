"""The ``imagenet-captions`` command.

Each subcommand lives in its own module, which provides ``add_arguments(parser)`` and
``run(args, extra) -> int``; it is imported only when chosen, so ``train`` and ``eval`` never pay
for (or need) Beam, and ``--help`` stays fast. ``extra`` holds the arguments this parser did not
know: the Beam pipeline options for the commands that run a pipeline, each checked to be one
(``runners.check_beam_args``: Beam would drop a mistyped option and run without it). Every mistake on
the command line, argparse's own (a bad type, a bad choice) and an unknown option included, ends as
one line on stderr and exit 2. ``--help`` shows every option's default.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from types import ModuleType
from typing import NoReturn

from imagenet_captions.errors import UsageError

#: name -> (module, one-line help, passes unknown arguments through as Beam options)
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "demo": ("imagenet_captions.demo", "build the bundled sample end to end (no network, no key)", True),
    "build": ("imagenet_captions.build.command", "build caption tables and WebDataset shards", True),
    "match": (
        "imagenet_captions.match.command",
        "class-matched subsets of any image-text corpus (captions naming an ImageNet class)",
        True,
    ),
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


#: The end of ``--help`` of the commands that run a Beam pipeline: which other options they take.
BEAM_OPTIONS_HELP = (
    "Beam pipeline options: the standard Apache Beam pipeline options are accepted too, e.g. --runner, "
    "--direct_num_workers, --direct_running_mode, --job_endpoint, --dry_run, and our --dask-address "
    "HOST:PORT (with --runner dask); see docs/scale-out.md. An option that is neither this command's "
    "nor Beam's is an error."
)
#: Pass-through commands that run in this process whatever the options say (harvest: a key's quota
#: and the journal are per process): Beam's options, but no runner to choose, so no --dask-address.
IN_PROCESS_ONLY = frozenset({"harvest"})
IN_PROCESS_BEAM_OPTIONS_HELP = (
    "Beam pipeline options: the standard Apache Beam pipeline options are accepted too, but this "
    "command runs in this one process: no --runner, no --dask-address, no multi_processing (see "
    "docs/scale-out.md). An option that is neither this command's nor Beam's is an error."
)


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help unless it already speaks of its default.

    argparse's ArgumentDefaultsHelpFormatter also prints ``(default: None)``, ``(default: False)`` and
    ``(default: )``, which tell a user nothing, and doubles the defaults the help already words better."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        if action.option_strings and _worth_showing(action.default) and "default" not in help_text.lower():
            help_text += " (default: %(default)s)"
        return help_text


def _worth_showing(default: object) -> bool:
    """Whether a default tells the user something: 0 does (``0 in (None, False)`` is true: no ``in``)."""
    return not (default is None or default is False or default is argparse.SUPPRESS or default == "")


class CommandParser(argparse.ArgumentParser):
    """argparse, but a bad command line is a :class:`UsageError`: one line and exit 2, as every other
    mistake the commands report (argparse itself prints the whole usage block first)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def command_parser(name: str) -> tuple[ModuleType, CommandParser]:
    """A command's module and its parser, as ``main`` builds it (what ``--help`` shows)."""
    module_name, help_text, passes_through = COMMANDS[name]
    module = importlib.import_module(module_name)
    epilog = None
    if passes_through:
        epilog = IN_PROCESS_BEAM_OPTIONS_HELP if name in IN_PROCESS_ONLY else BEAM_OPTIONS_HELP
    parser = CommandParser(
        prog=f"imagenet-captions {name}",
        description=help_text,
        epilog=epilog,
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    module.add_arguments(parser)
    return module, parser


def main(argv: list[str] | None = None) -> int:
    prog = "imagenet-captions"
    try:
        parser = CommandParser(
            prog=prog,
            description="Build, refresh, ship and study ImageNet-Captions.",
            epilog="Pipeline commands (build, harvest, demo) also take Apache Beam's pipeline options (e.g. "
            "--runner, --direct_num_workers); any other option is an error.",
        )
        parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
        sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
        for name, (_, help_text, _) in COMMANDS.items():
            sub.add_parser(name, help=help_text, add_help=False)

        # Two passes: the first finds the command, the second parses with that command's own arguments.
        args, _ = parser.parse_known_args(argv)
        prog = f"imagenet-captions {args.command}"
        passes_through = COMMANDS[args.command][2]
        # Beam's import logs a warning about optional GCP clients to the root logger; it is noise here.
        logging.getLogger().addFilter(lambda r: "apitools not found" not in r.getMessage())
        module, cmd_parser = command_parser(args.command)
        raw = list(sys.argv[1:] if argv is None else argv)
        raw.remove(args.command)
        if passes_through:
            command_args, extra = cmd_parser.parse_known_args(raw)
            from imagenet_captions.runners import check_beam_args

            ours = [s for action in cmd_parser._actions for s in action.option_strings]
            check_beam_args(extra, ours, choose_runner=args.command not in IN_PROCESS_ONLY)
        else:
            command_args, extra = cmd_parser.parse_args(raw), []
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
