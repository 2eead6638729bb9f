"""`aigckit datasets` and `aigckit models`: what is registered, one line each."""

from __future__ import annotations

import typer

__all__ = ["datasets_command", "models_command"]


def datasets_command() -> None:
    """List the registered datasets."""
    from ..data import DATASETS, DESCRIPTIONS

    for name in DATASETS:
        typer.echo(f"{name:<14} {DESCRIPTIONS[name]}")


def models_command() -> None:
    """List the registered models with their family."""
    from ..family import FAMILIES

    for family_name in FAMILIES:
        family = FAMILIES.get(family_name)
        for model, description in family.models.items():
            typer.echo(f"{model:<14} {family_name:<10} {description}")
