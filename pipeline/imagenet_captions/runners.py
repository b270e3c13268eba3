"""How a Beam pipeline is made from the pass-through Beam options of ``build`` and ``harvest``.

The commands hand every option they do not know to this module, which first refuses one that is
neither theirs nor a Beam pipeline option (:func:`check_beam_args`: Beam itself would drop it with a
warning and run without it). It decides which runner runs the
graph: Beam's in-process FnApiRunner by default (the DirectRunner would download the Prism binary),
Beam's DaskRunner for ``--runner dask`` (with our ``--dask-address HOST:PORT``, or a local cluster
we start and close), and any other runner exactly as Beam would make it. It also says how many
workers the runner has (so the graph splits its reads to match), and makes ``--dry_run`` translate
the graph without running it on every runner.

Before a Dask build starts, the scheduler and every worker must be running the client's project
code: a stale worker would otherwise fail much later with an unpickling error, or worse, compute
with other code. This module must never change what a stage computes; it only chooses where.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser
from apache_beam.runners.runner import PipelineResult, PipelineRunner, PipelineState

from imagenet_captions.beam_args import (
    given,
    last_value,
    local_cores,
    option_values,
    whole_number,
    without,
)
from imagenet_captions.errors import UsageError

log = logging.getLogger(__name__)

#: The names ``--runner`` accepts for Beam's DaskRunner (compared case-insensitively).
DASK_RUNNER_NAMES = frozenset({"dask", "daskrunner"})
#: Our option: the Dask scheduler's address, mapped to Beam's ``--dask_client_address``.
DASK_ADDRESS = "--dask-address"
#: Workers assumed for a remote runner (Portable, Flink, Dataflow) that states no count: reads are
#: split into about twice this many parts, so a cluster of up to this size has no idle worker while
#: a small one pays only a few extra tasks.
DEFAULT_REMOTE_PARALLELISM = 16
#: Runners that implement ``--dry_run`` themselves (they translate the job and stop).
_NATIVE_DRY_RUN = frozenset({"dataflowrunner", "dataflow"})


# ---------------------------------------------------------------------------------------------------
# Reading the pass-through options
# ---------------------------------------------------------------------------------------------------


def _runner_name(beam_args: list[str]) -> str | None:
    """The ``--runner`` given, lower-cased, or None; ``--dask-address`` alone means Dask."""
    runner = last_value(beam_args, "--runner")
    if runner is None:
        return "dask" if given(beam_args, DASK_ADDRESS) else None
    return runner.lower()


def is_dask(beam_args: list[str]) -> bool:
    """Whether these options choose Beam's DaskRunner."""
    return _runner_name(beam_args) in DASK_RUNNER_NAMES


def is_dry_run(beam_args: list[str]) -> bool:
    """Whether ``--dry_run`` asks to translate the graph without running it.

    Beam declares ``--dry_run`` as taking a value and treats any non-empty string as true, so
    ``--dry_run False`` would silently submit nothing on Dataflow; here a bare flag means true and
    the value must be a boolean word."""
    found = [value for _, _, value in option_values(beam_args, "--dry_run")]
    if not found:
        return False
    value = found[-1]
    if value is None or value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise UsageError(f"--dry_run takes true or false, not {value!r}")


def beam_options(beam_args: list[str]) -> list[str]:
    """The options as Beam must see them: ours translated, ``--dry_run`` normalised.

    ``--runner dask`` becomes Beam's DaskRunner, ``--dask-address`` its ``--dask_client_address``,
    and Create's elements become one Dask partition each (``--dask_partition_size 1``) unless the
    user chose the partitioning: the graph creates one element per metadata part and per class
    folder precisely so that each is its own task; Beam's default (at least 128 elements a
    partition) would put a whole listing on one worker."""
    dry = is_dry_run(beam_args)
    args = without(beam_args, "--dry_run")
    if dry:
        args.append("--dry_run=True")
    if not is_dask(beam_args):
        if given(beam_args, DASK_ADDRESS):
            raise UsageError(
                f"{DASK_ADDRESS} needs --runner dask, not --runner {last_value(args, '--runner')}"
            )
        return args
    address = last_value(args, DASK_ADDRESS)
    if given(args, DASK_ADDRESS) and not address:
        raise UsageError(f"{DASK_ADDRESS} needs HOST:PORT")
    args = without(without(args, DASK_ADDRESS), "--runner")
    if address is not None:
        args.append(f"--dask_client_address={address}")
    if last_value(args, "--dask_partition_size") is None and last_value(args, "--dask_npartitions") is None:
        args.append("--dask_partition_size=1")
    return args


# ---------------------------------------------------------------------------------------------------
# Refusing what is not an option
# ---------------------------------------------------------------------------------------------------


class _StrictBeamParser(_BeamArgumentParser):
    """Beam's own parser (it knows ValueProvider options), but a bad value is our one-line error."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _all_option_classes() -> list[type[PipelineOptions]]:
    """Every PipelineOptions subclass imported so far, subclasses of subclasses included."""
    found: dict[str, type[PipelineOptions]] = {}
    todo = list(PipelineOptions.__subclasses__())
    while todo:
        cls = todo.pop(0)
        found.setdefault(f"{cls.__module__}.{cls.__qualname__}", cls)
        todo.extend(cls.__subclasses__())
    return list(found.values())


def _beam_parser() -> _StrictBeamParser:
    """A parser of every Beam pipeline option registered now, and ours, built as Beam builds its own
    (``PipelineOptions.get_all_options``); ``allow_abbrev=False`` as there: Beam drops an
    abbreviation, so it is unknown here."""
    # "resolve": a class that re-declares another's flag (a user's options class) keeps both classes' others.
    parser = _StrictBeamParser(allow_abbrev=False, add_help=False, conflict_handler="resolve")
    for cls in _all_option_classes():
        cls._add_argparse_args(parser)  # noqa: SLF001 - how Beam itself lists its options
    parser.add_argument(DASK_ADDRESS)
    return parser


def _register_dask_options(beam_args: list[str]) -> None:
    """Beam declares the DaskRunner's options in the module that imports Dask: import it only when the
    options mention Dask (imports that every other build need not pay for)."""
    if is_dask(beam_args) or any(a.startswith("--dask") for a in beam_args):
        # Without the dask extra, make_pipeline says so when the Dask runner is asked for.
        with contextlib.suppress(ImportError):
            import apache_beam.runners.dask.dask_runner  # noqa: F401 - registers DaskOptions


def known_beam_options() -> list[str]:
    """The option strings of every Beam pipeline option registered now, and our ``--dask-address``."""
    return [s for action in _beam_parser()._actions for s in action.option_strings]  # noqa: SLF001


def check_beam_args(beam_args: list[str], ours: Iterable[str] = (), choose_runner: bool = True) -> None:
    """Refuse (one line, exit 2) an argument that is neither the command's (``ours``) nor a Beam option;
    with ``choose_runner=False`` (a command that always runs in its own process), ``--dask-address``
    too, which would otherwise be dropped as silently.

    Beam parses the options it knows and drops the rest with a warning lost among INFO lines, so a
    mistyped ``--resise 256`` or ``--resize256`` built everything without resizing and exited 0. The
    message names the closest option, ours or Beam's. A value Beam's parser rejects
    (``--direct_num_workers two``) is refused here too, instead of ending in Beam's usage block."""
    is_dry_run(beam_args)  # a bare --dry_run is ours to accept; a bad value is refused by name
    if not choose_runner and given(beam_args, DASK_ADDRESS):
        raise UsageError(f"{DASK_ADDRESS}: this command runs in this process, on no cluster")
    _register_dask_options(beam_args)
    args = without(beam_args, "--dry_run")
    _, unknown = _beam_parser().parse_known_args(args)
    if not unknown:
        return
    options = [u for u in unknown if u.startswith("-")]
    if not options:
        raise UsageError(f"unrecognized argument: {unknown[0]}")
    name = options[0].split("=", 1)[0]
    known = sorted(set(ours) | set(known_beam_options()))
    hint = _hint(name, known)
    raise UsageError(f"unknown option {name} (neither this command's nor a Beam pipeline option){hint}")


def _hint(name: str, known: list[str]) -> str:
    """``; did you mean ...?`` with the closest known option, or a pointer to the lists of options."""
    glued = [k for k in known if name.startswith(k) and name[len(k) :][:1].isdigit()]
    if glued:  # --resize256: an option and its value without a space
        option = max(glued, key=len)
        return f"; did you mean {option} {name[len(option):]}?"
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f"; did you mean {close[0]}?"
    return "; see --help and docs/scale-out.md for the options"


# ---------------------------------------------------------------------------------------------------
# Making the pipeline
# ---------------------------------------------------------------------------------------------------


def make_pipeline(beam_args: list[str]) -> beam.Pipeline:
    """The pipeline the command's pass-through options ask for (see the module docstring)."""
    args = beam_options(beam_args)
    options = PipelineOptions(args)
    runner = _runner_name(beam_args)
    if is_dry_run(beam_args) and runner not in _NATIVE_DRY_RUN:
        return beam.Pipeline(runner=TranslateOnlyRunner(), options=options)
    if runner in DASK_RUNNER_NAMES:
        from imagenet_captions.dask_runner import dask_runner

        return beam.Pipeline(runner=dask_runner(args), options=options)
    if runner is not None:
        return beam.Pipeline(options=options)
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    return beam.Pipeline(runner=FnApiRunner(), options=options)


class _DoneResult(PipelineResult):
    """The result of a run that ran nothing: done already, so there is nothing to wait for."""

    def wait_until_finish(self, duration: int | None = None) -> str:
        return PipelineState.DONE


class TranslateOnlyRunner(PipelineRunner):
    """``--dry_run`` for runners that would otherwise run the graph (all but Dataflow).

    It translates the pipeline to its portable form, which catches what a remote runner would
    reject at submission (unpicklable DoFns, missing coders), and runs nothing."""

    def run_pipeline(self, pipeline: beam.Pipeline, options: PipelineOptions) -> PipelineResult:
        pipeline.to_runner_api()
        return _DoneResult(PipelineState.DONE)


def only_tag(tagged: beam.PCollection, tag: str, label: str) -> beam.PCollection:
    """The values of one tag of a unit's ``(tag, value)`` output.

    The pipelines split a unit's outputs by a filter per tag instead of Beam's tagged outputs,
    which Beam's Dask translation mixes up (docs/architecture.md)."""
    return tagged | label >> beam.FlatMap(lambda tv, t=tag: [tv[1]] if tv[0] == t else [])


def run_graph(beam_args: list[str], add_graph: Callable[[beam.Pipeline], None]) -> list[str] | None:
    """Make the pipeline the options ask for, add a command's graph and run it to its end.

    With ``--dry_run`` the runner only translates the graph; the stages it holds are returned then
    (None otherwise), for :func:`print_dry_run`."""
    p = make_pipeline(beam_args)
    add_graph(p)
    stages = stage_names(p) if is_dry_run(beam_args) else None
    p.run().wait_until_finish()
    return stages


def print_dry_run(rep: dict[str, Any], what: str) -> int:
    """What a ``--dry_run`` translated (``what``: "the build's graph"); the command's exit status."""
    print(f"dry run: {what} was translated, nothing ran; {len(rep['stages'])} stages:")
    for name in rep["stages"]:
        print(f"  {name}")
    return 0


def stage_names(pipeline: beam.Pipeline) -> list[str]:
    """The labels of a constructed pipeline's top-level transforms and of the steps inside our own
    composites, in order.

    What ``build --dry_run`` prints: the stages a user recognises. Beam's own composites (Create,
    Reshuffle, combiners) are not opened: their insides are Beam's, and differ between releases."""
    names: list[str] = []

    def ours(node: beam.pipeline.AppliedPTransform) -> bool:
        return not type(node.transform).__module__.startswith("apache_beam.")

    class Visitor(beam.pipeline.PipelineVisitor):
        def _note(self, node: beam.pipeline.AppliedPTransform) -> None:
            parent = node.parent
            if parent is None or not node.full_label:
                return
            chain = []
            while parent is not None and parent.parent is not None:
                chain.append(parent)
                parent = parent.parent
            if all(ours(outer) for outer in chain):
                names.append(node.full_label)

        def enter_composite_transform(self, node: beam.pipeline.AppliedPTransform) -> None:
            self._note(node)

        def visit_transform(self, node: beam.pipeline.AppliedPTransform) -> None:
            self._note(node)

    pipeline.visit(Visitor())
    return names


# ---------------------------------------------------------------------------------------------------
# How many workers
# ---------------------------------------------------------------------------------------------------


def parallelism(beam_args: list[str]) -> int:
    """How many workers (threads that run DoFns at once) the chosen runner has.

    The graph splits its reads into about twice this many parts, so every worker has work right
    after the read and a slow part does not hold the whole stage back."""
    runner = _runner_name(beam_args)
    if runner is None or runner in ("directrunner", "direct", "fnapirunner", "bundlebaseddirectrunner"):
        workers = whole_number(beam_args, "--direct_num_workers")
        if workers is None:
            return 1
        if workers < 0:
            raise UsageError(f"--direct_num_workers must be 0 (all cores) or more, not {workers}")
        return workers or local_cores()
    if runner in DASK_RUNNER_NAMES:
        args = beam_options(beam_args)
        address = last_value(args, "--dask_client_address")
        scheduler_file = last_value(args, "--dask_scheduler_file")
        if address is None and scheduler_file is None:
            return local_cores()
        from imagenet_captions.dask_runner import connect

        with connect(args) as client:
            return max(1, sum(client.nthreads().values()))
    for name in ("--parallelism", "--max_num_workers", "--num_workers"):
        stated = whole_number(beam_args, name)
        if stated is not None and stated > 0:
            return stated * _machine_cores(beam_args) if name != "--parallelism" else stated
    return DEFAULT_REMOTE_PARALLELISM


def _machine_cores(beam_args: list[str]) -> int:
    """vCPUs of a Dataflow ``--worker_machine_type`` like ``n2-standard-8`` (one SDK thread each)."""
    machine = last_value(beam_args, "--worker_machine_type") or last_value(beam_args, "--machine_type")
    if machine:
        tail = machine.rsplit("-", 1)[-1]
        if tail.isdigit():
            return int(tail)
    return 1
