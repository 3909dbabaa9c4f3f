"""Command-line interface: a thin Typer layer over the library API.

Each sub-command lives in its own module in this package and exposes
``register(app: typer.Typer) -> None``; add its module name to ``COMMAND_MODULES``.
Heavy imports (torch, cv2) happen inside the commands, so ``facepulse --help`` is quick.
"""

from __future__ import annotations

import importlib
import sys
import warnings

import typer

from facepulse.errors import FacepulseError

COMMAND_MODULES = [
    "facepulse.cli.predict_cmd",
    "facepulse.cli.synth_cmd",
    "facepulse.cli.demo_cmd",
    "facepulse.cli.train_cmd",
    "facepulse.cli.export_cmd",
    "facepulse.cli.models_cmd",
    "facepulse.cli.search_cmd",
    "facepulse.cli.preprocess_cmd",
    "facepulse.cli.evaluate_cmd",
    "facepulse.cli.live_cmd",
    "facepulse.cli.serve_cmd",
]

app = typer.Typer(
    name="facepulse",
    help="Heart rate from face video (rPPG): predict, synthesise, preprocess, evaluate, train.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ARG001
    """A warning as one line on stderr (no category, no source line): the CLI's style."""
    text = str(message).strip().splitlines()[0] if str(message).strip() else category.__name__
    print(f"facepulse: warning: {text}", file=sys.stderr if file is None else file)


def _usage_error_line(ex: typer.TyperException) -> str:
    """A click usage error (bad option, missing argument...) as one line."""
    message = ex.format_message() if hasattr(ex, "format_message") else str(ex)
    message = " ".join(str(message).split())
    ctx = getattr(ex, "ctx", None)
    command = ctx.command_path if ctx is not None else "facepulse"
    return f"{message} (see '{command} --help')"


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: user errors become one line on stderr and an exit code.

    Warnings (e.g. a video whose end could not be decoded) are printed as one line each,
    ``facepulse: warning: ...``; usage errors and :class:`FacepulseError` as
    ``facepulse: error: ...``.
    """
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _run(argv)


def _run(argv: list[str] | None) -> int:
    try:
        rc = app(args=argv, standalone_mode=False, prog_name="facepulse")
    except FacepulseError as err:
        print(f"facepulse: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("facepulse: interrupted (finished outputs were kept)", file=sys.stderr)
        return 130
    except typer.Exit as ex:
        return int(ex.exit_code or 0)
    except SystemExit as ex:  # click usage errors already printed their message
        return int(ex.code or 0) if isinstance(ex.code, int) else 1
    except typer.Abort:
        print("facepulse: aborted", file=sys.stderr)
        return 130
    except typer.TyperException as ex:  # usage errors (bad option, missing argument...)
        if type(ex).__name__ == "NoArgsIsHelpError":  # bare `facepulse`: the help was shown
            return int(getattr(ex, "exit_code", 2) or 2)
        print(f"facepulse: error: {_usage_error_line(ex)}", file=sys.stderr)
        return int(getattr(ex, "exit_code", 2) or 2)
    # Without standalone mode, typer returns the code of an Exit (Ctrl-C becomes Exit(130)).
    if isinstance(rc, int) and not isinstance(rc, bool):
        if rc == 130:
            print("facepulse: interrupted (finished outputs were kept)", file=sys.stderr)
        return rc
    return 0


def console_main() -> int:
    """The ``facepulse`` console script: :func:`main`, then the objects left alive are frozen
    out of the garbage collector, so the interpreter's exit does not walk them all once more
    (the final collection cost ~0.3 s of CPU after a ``predict``; outputs are already
    written and atexit handlers still run). In-process callers use :func:`main`."""
    import gc

    rc = main()
    gc.freeze()
    return rc


if __name__ == "__main__":
    sys.exit(console_main())
