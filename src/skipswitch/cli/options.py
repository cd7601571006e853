"""Typer commands whose options are a job config model's fields.

Name, default and help come from the model (``Field(description=...)``), so a default lives in
one place; the command validates the options into the model (one ``error:`` line on a bad value)
and hands it to the job.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import click
import typer
from pydantic import BaseModel


def _cli_type(annotation: Any) -> Any:
    """Typer takes no Literal, and accepts only Optional[X] of the unions: map both to plain types."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:  # validators (io.OutDir, ...) run in the model, not in typer
        return _cli_type(typing.get_args(annotation)[0])
    if origin is Literal:
        return type(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return Optional[_cli_type(args[0])]
    return annotation


def options_from(model: type[BaseModel], *, exclude: tuple[str, ...] = (), arguments: tuple[str, ...] = (),
                 decls: dict[str, tuple[str, ...]] | None = None, help: dict[str, str] | None = None,
                 interrupted: str = "interrupted", config_file: Callable[[Path], BaseModel] | None = None):
    """Decorate ``command(config, **own_options)``: the typer signature becomes the model's fields
    (minus ``exclude``; ``arguments`` are positional; ``decls`` gives other flag names) followed by the
    command's own options. ``config_file`` adds ``--config FILE`` whose values the given flags override."""
    decls, help = decls or {}, help or {}

    def decorate(command: Callable) -> Callable:
        own = list(inspect.signature(command).parameters.values())[1:]
        hints = typing.get_type_hints(command)
        params = []
        for name, field in model.model_fields.items():
            if name in exclude or name in ("kind", "version"):
                continue
            default = ... if field.is_required() else field.get_default(call_default_factory=True)
            text = field.description or help.get(name)
            # a bool is a plain flag (--resume), not typer's --resume/--no-resume pair
            flag = ("--" + name.replace("_", "-"),) if field.annotation is bool else ()
            info = (typer.Argument(default, help=text) if name in arguments
                    else typer.Option(default, *decls.get(name, flag), help=text))
            params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info,
                                            annotation=_cli_type(field.annotation)))
        own_names = {p.name for p in own}
        if config_file is not None:
            params.append(inspect.Parameter("config_path", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                                            default=typer.Option(None, "--config", help="Read the options from this "
                                                                 "JSON file; options given on the command line override it.")))

        @functools.wraps(command)
        def run(**values):
            from ..training.config import validated

            extra = {k: values.pop(k) for k in own_names}
            path = values.pop("config_path", None)
            if path is not None:
                ctx = click.get_current_context()
                given = {k: v for k, v in values.items()
                         if ctx.get_parameter_source(k).name not in ("DEFAULT", "DEFAULT_MAP")}
                values = {**config_file(path).model_dump(), **given}
            try:
                return command(validated(model, **values), **extra)
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM (cli.main): say what the user can do next
                typer.echo(interrupted, err=True)
                raise typer.Exit(130) from None

        run.__signature__ = inspect.Signature([*params, *(p.replace(kind=p.KEYWORD_ONLY) for p in own)])
        run.__annotations__ = {**{p.name: p.annotation for p in params}, **{p.name: hints[p.name] for p in own}}
        del run.__wrapped__  # typer must read the signature above, not the command's
        return run

    return decorate
