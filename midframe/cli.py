"""The ``midframe`` command: parses arguments and calls into the package; no logic of its own.

Control commands find the daemon through ``midframe.api.locate`` (the config's state dir, else the
one the running daemon recorded), print a sentence (``--json`` for the daemon's answer), log at INFO
unless ``--verbose``, and a closed pipe (``midframe jobs | head``) ends them quietly. The sentences
(names escaped as in log lines) are ``midframe.sentences``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from midframe import __version__
from midframe.config import (
    Config,
    default_config_path,
    load_config,
    parse_fps,
    resolve_paths,
    with_overrides,
    write_example_config,
)
from midframe.engine import ENGINES, weights_providers
from midframe.errors import ConfigError, DaemonNotRunning, MidframeError
from midframe.fs.safe_write import atomic_write
from midframe.log import configure_logging
from midframe.sentences import (
    cancelled_sentence,
    jobs_sentence,
    paused_sentence,
    resumed_sentence,
    said,
    status_sentence,
)

Handler = Callable[[argparse.Namespace], int]


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def _fps_option(value: str) -> Any:
    try:
        return parse_fps(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# --- the main job and the daemon ---------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from midframe.run_command import main_job

    return main_job(args.config)


def cmd_watch(args: argparse.Namespace) -> int:
    from midframe.daemon.startup import watch_in_foreground

    return watch_in_foreground(args.config, log_to_stderr=not args.quiet)


def cmd_tray(args: argparse.Namespace) -> int:
    from midframe.tray.app import main as tray_main

    return tray_main(args.config)


# --- one file ----------------------------------------------------------------------------------


def cmd_interpolate(args: argparse.Namespace) -> int:
    from midframe.interpolate_command import interpolate_file

    config = _config(args)
    if args.factor is not None and args.fps is not None:
        raise ConfigError("--factor and --fps: give one or the other")
    from midframe.engine import engine_chosen

    chosen = args.engine is not None or engine_chosen(config.engine)
    engine = with_overrides(
        config.engine,
        name=args.engine,
        quality=args.quality,
        device=args.device,
        batch_size=args.batch_size,
        model_scale=args.model_scale,
        factor=args.factor,
        target_fps=args.fps,
        dedup=args.dedup,
    )
    if args.factor is not None:
        engine = engine.model_copy(update={"target_fps": None})
    output = with_overrides(
        config.output, codec=args.codec, crf=args.crf, preset=args.preset, pix_fmt=args.pix_fmt
    )
    resume = config.resume
    if args.segment_frames is not None:
        resume = with_overrides(resume, segment_frames=args.segment_frames)
    report = interpolate_file(
        args.input,
        args.output,
        engine=engine,
        output=output,
        resume=resume,
        paths=resolve_paths(config),
        resume_previous=args.resume,
        engine_chosen=chosen,
        show_progress=not args.quiet,
    )
    if args.report is not None:
        atomic_write(args.report, json.dumps(report.to_json(), indent=2) + "\n")
    if not args.quiet:
        print(
            f"{said(report.output)}: {report.frames_out} frames at {report.fps_out} fps from {report.frames_in} "
            f"({report.engine} on {report.device}, {report.wall_s:.1f} s)"
        )
    return 0


# --- talking to a running daemon ---------------------------------------------------------------


def _client(args: argparse.Namespace) -> Any:
    from midframe.api import locate
    from midframe.api.control import ControlClient

    pointer = locate.pointer_path()
    location = locate.locate_state_dir(args.config, pointer=pointer)
    if location.note:
        print(location.note, file=sys.stderr)
    try:
        return ControlClient.from_state_dir(location.state_dir)
    except DaemonNotRunning as exc:
        hint = locate.hint_for_missing_daemon(location, pointer=pointer)
        if hint is None:
            raise
        raise DaemonNotRunning(f"{exc}; {hint}") from None


def _answer(args: argparse.Namespace, answer: Any, sentence: Callable[[Any], str]) -> int:
    """The daemon's answer as JSON with ``--json``, else as a sentence."""
    print(json.dumps(answer) if args.json else sentence(answer))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    return _answer(args, _client(args).status(), status_sentence)


def cmd_pause(args: argparse.Namespace) -> int:
    return _answer(args, _client(args).pause(), paused_sentence)


def cmd_resume(args: argparse.Namespace) -> int:
    return _answer(args, _client(args).resume(), resumed_sentence)


def cmd_stop(args: argparse.Namespace) -> int:
    client = _client(args)
    pid = f" (pid {client.pid})" if client.pid else ""
    return _answer(args, client.stop(),
                   lambda _: f"the daemon{pid} stops after the current batch; a job under way resumes at the next start")


def cmd_jobs(args: argparse.Namespace) -> int:
    return _answer(args, _client(args).jobs(), jobs_sentence)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from midframe.web.link import open_dashboard

    return open_dashboard(_client(args), print_only=args.print_url)


def cmd_retry(args: argparse.Namespace) -> int:
    return _answer(args, _client(args).retry(args.id),
                   lambda job: f"job {job['id']} ({said(job['name'])}) is queued again")


def cmd_cancel(args: argparse.Namespace) -> int:
    return _answer(args, _client(args).cancel(args.id), cancelled_sentence)


# --- models, services, config ------------------------------------------------------------------


def cmd_models(args: argparse.Namespace) -> int:
    models_dir = resolve_paths(_config(args)).models_dir
    providers = weights_providers()
    if args.models_command == "import":
        installed = providers[args.engine].import_file(args.path, models_dir)
        print(f"imported {installed.version}: {installed.path}")
        return 0
    for provider in providers.values():
        if args.models_command == "fetch":
            path = provider.fetch(models_dir, force=args.force)
            print(f"{provider.title} weights ready: {path}")
            continue
        found = provider.installed(models_dir)
        if not found:
            print(f"no weights installed in {models_dir}; {provider.how_to_get}")
        for item in found:
            print(f"{item.version}  {item.path}  sha256 {item.sha256[:16]}  from {item.source}")
    return 0


def cmd_service(args: argparse.Namespace) -> int:
    from midframe.service import commands

    return commands.dispatch(args.service_command, scope=args.scope, dry_run=args.dry_run, config_path=args.config)


def cmd_config(args: argparse.Namespace) -> int:
    target = args.config or default_config_path()
    if args.config_command == "init":
        from midframe.api import locate
        from midframe.api.client import process_alive

        print(f"wrote {write_example_config(target, overwrite=args.force)}")
        print(locate.config_pickup(target, pointer=locate.pointer_path(), alive=process_alive))
    elif args.config_command == "path":
        print(target)
    else:
        print(json.dumps(_config(args).model_dump(mode="json"), indent=2))
    return 0


def cmd_farm(args: argparse.Namespace) -> int:
    from midframe.farm import processes

    if args.farm_command == "scheduler":
        return processes.run_scheduler(host=args.host, port=args.port)
    return processes.run_worker(_config(args), scheduler=args.scheduler, device=args.device, nthreads=args.nthreads)


# --- the parser --------------------------------------------------------------------------------


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    parser.add_argument("--config", type=Path, default=None if top else argparse.SUPPRESS, metavar="FILE",
                        help="YAML config file")
    parser.add_argument("-v", "--verbose", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="debug lines on stderr (the daemon's level comes from logging.level)")


def build_parser() -> argparse.ArgumentParser:
    """``--config`` and ``-v`` work before the subcommand and after it (the later one wins).

    The subcommands' copies default to SUPPRESS, so a subcommand given no ``--config`` keeps the one
    given before it. The top level has actions of its own with the real defaults: argparse shares a
    parent's action objects among all its children, so a default set on the top level through
    ``set_defaults`` would reach every subcommand's copy and reset what came before the subcommand.
    """
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, top=False)

    parser = argparse.ArgumentParser(prog="midframe", description="Makes videos smoother with frame interpolation.")
    _global_options(parser, top=True)
    parser.add_argument("--version", action="version", version=f"midframe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        command.set_defaults(handler=handler)
        return command

    add("run", cmd_run, "the main job: the daemon, plus the tray icon where a desktop exists")
    watch = add("watch", cmd_watch, "run the daemon in the foreground until SIGTERM, SIGINT or `midframe stop`")
    watch.add_argument("-q", "--quiet", action="store_true", help="log to the log file only, not to stderr")
    add("tray", cmd_tray, "the tray icon for a daemon that runs elsewhere (service, other process)")

    interpolate = add("interpolate", cmd_interpolate, "convert one file")
    interpolate.add_argument("input", type=Path)
    interpolate.add_argument("-o", "--output", type=Path, required=True)
    rate = interpolate.add_mutually_exclusive_group()
    rate.add_argument("--factor", type=int, help="exactly N times the frames, same duration (2..16)")
    rate.add_argument("--fps", type=_fps_option, help="exact output frame rate, e.g. 60 or 60000/1001")
    interpolate.add_argument("--engine", choices=list(ENGINES),
                             help="auto (default where RIFE's weights are installed: the better of rife and dis "
                                  "for each scene), or one engine for the whole video")
    interpolate.add_argument("--quality", choices=["standard", "high"],
                             help="high: RIFE averages several passes (engine.tta: 4 or 2) for sharper frames, "
                                  "at that many times the model time")
    interpolate.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    interpolate.add_argument("--batch-size", type=int)
    interpolate.add_argument("--model-scale", type=float)
    interpolate.add_argument("--dedup", choices=["auto", "off"],
                             help="animation on twos/threes: space the new frames evenly between drawings (auto)")
    interpolate.add_argument("--codec", help="auto (follow the source), or an ffmpeg encoder: libx264, libx265, ...")
    interpolate.add_argument("--crf", type=int)
    interpolate.add_argument("--preset")
    interpolate.add_argument("--pix-fmt")
    interpolate.add_argument("--segment-frames", type=int, help="output frames per resumable segment")
    interpolate.add_argument("--resume", action="store_true", help="continue an interrupted run of this command")
    interpolate.add_argument("--report", type=Path, metavar="FILE.json", help="write a JSON report")
    interpolate.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    json_help = "print the daemon's answer as JSON"
    status = add("status", cmd_status, "what the daemon is doing")
    status.add_argument("--json", action="store_true", help=json_help)
    for name, handler, text in (
        ("pause", cmd_pause, "pause after the current batch (survives a restart)"),
        ("resume", cmd_resume, "resume after a pause"),
        ("stop", cmd_stop, "stop the daemon; the current job resumes at the next start"),
        ("jobs", cmd_jobs, "list the jobs"),
    ):
        add(name, handler, text).add_argument("--json", action="store_true", help=json_help)
    retry = add("retry", cmd_retry, "queue a failed or cancelled job again")
    retry.add_argument("id", type=int)
    retry.add_argument("--json", action="store_true", help=json_help)
    cancel = add("cancel", cmd_cancel, "cancel a queued or running job")
    cancel.add_argument("id", type=int)
    cancel.add_argument("--json", action="store_true", help=json_help)
    dashboard = add("dashboard", cmd_dashboard, "open the web dashboard in a browser, logged in by a one-time link")
    dashboard.add_argument("--print-url", action="store_true", help="print the login link instead of opening it")

    models = add("models", cmd_models, "install and list model weights")
    models_sub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    with_weights = list(weights_providers())  # the registry's engines that have weights: rife
    fetch = models_sub.add_parser("fetch", parents=[common],
                                  help=f"fetch and verify the weights of {', '.join(with_weights)}")
    fetch.add_argument("--force", action="store_true", help="fetch again even if installed")
    models_sub.add_parser("list", parents=[common], help="show installed weights")
    import_ = models_sub.add_parser("import", parents=[common],
                                    help="import a weights file you already have (RIFE: a v4.25 flownet.pkl)")
    import_.add_argument("path", type=Path)
    import_.add_argument("--engine", choices=with_weights, default=next(iter(with_weights), None),
                         help="whose weights the file holds (default: the first, rife)")

    service = add("service", cmd_service, "install midframe as a service that starts at boot")
    service.add_argument("service_command", choices=["install", "uninstall", "status"])
    scope = service.add_mutually_exclusive_group()
    scope.add_argument("--user", dest="scope", action="store_const", const="user")
    scope.add_argument("--system", dest="scope", action="store_const", const="system")
    service.set_defaults(scope="user")
    service.add_argument("--dry-run", action="store_true", help="print what would be written")

    farm = add("farm", cmd_farm, "a render farm: the Dask scheduler, or a worker machine for it")
    farm_sub = farm.add_subparsers(dest="farm_command", required=True, metavar="ROLE")
    scheduler = farm_sub.add_parser("scheduler", parents=[common], help="run the Dask scheduler the daemon and workers use")
    scheduler.add_argument("--host", help="address to listen on (default: all)")
    scheduler.add_argument("--port", type=int, default=8786, help="port to listen on (default 8786)")
    farm_worker = farm_sub.add_parser("worker", parents=[common], help="make segments for a scheduler's daemon")
    farm_worker.add_argument("--scheduler", required=True, metavar="ADDRESS", help="tcp://HOST:PORT")
    farm_worker.add_argument("--device", help="auto, cpu, cuda, cuda:N (default: engine.device)")
    farm_worker.add_argument("--nthreads", type=int, help="segments at once (default: one per device)")

    config = add("config", cmd_config, "write or show the configuration")
    config.add_argument("config_command", choices=["init", "show", "path"])
    config.add_argument("--force", action="store_true", help="with init: overwrite an existing file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(level="DEBUG" if args.verbose else "INFO")  # `watch` and `run` set their own
    if isinstance(sys.stdout, io.TextIOWrapper):  # sys.stdout is None under pythonw
        # What the terminal's encoding cannot show (Japanese on a cp1252 console) comes out escaped.
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        code = args.handler(args)
        sys.stdout.flush()  # here, so that a closed pipe is seen below and not at exit
        return code
    except BrokenPipeError:
        # The reader went away (`midframe jobs | head`): what it wanted it has. Point stdout at the
        # null device so the interpreter's own flush at exit does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 141 if os.name != "nt" else 1  # 128 + SIGPIPE, what a shell reports for a killed writer
    except MidframeError as exc:
        print(f"midframe: error: {said(exc)}", file=sys.stderr)  # one line, whatever a path in it holds
        return exc.exit_code
    except KeyboardInterrupt:
        print("midframe: interrupted", file=sys.stderr)
        return 130
