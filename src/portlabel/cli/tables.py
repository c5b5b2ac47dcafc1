"""Readable terminal output (rich tables) for the CLI's TTY mode. Pipes get JSON instead.

Text from the registry (descriptions with ``[RFC...]``, names) is printed literally.
"""

from __future__ import annotations


def _console():
    from portlabel.terminal import console

    return console()


def print_answers(answers: list[dict], title: str) -> None:
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for column in ("port", "transport", "service", "aliases", "status", "class", "description"):
        table.add_column(column, overflow="fold")
    for a in answers:
        description = (a.get("description") or "").split("\n", 1)[0]
        table.add_row(
            "" if a.get("port") is None else str(a["port"]),
            a.get("transport") or "",
            a.get("service") or "-",
            ", ".join(a.get("aliases") or []),
            a.get("status") or "",
            a.get("port_class") or "",
            description,
        )
    _console().print(table)


def print_info(summary: dict) -> None:
    from rich.table import Table
    from rich.text import Text

    console = _console()
    for source in summary["sources"]:
        console.print(
            Text.assemble(
                (source["kind"], "bold"),
                f" {source['file']}  updated {source['updated']}"
                f"  sha256 {source['sha256'][:16]}…  {source['records']:,} records",
            )
        )
    proto = summary.get("protocols")
    if proto:
        console.print(
            Text.assemble((proto["kind"], "bold"), f" {proto['file']}  updated {proto['updated']}")
        )
    console.print(
        f"{summary['entries']:,} records, {summary['service_names']:,} service names, "
        f"{summary['name_only_records']:,} name-only records  ({summary['path']})"
    )
    table = Table(title="ports by transport and status")
    columns = ["transport", *next(iter(summary["ports"].values()))]  # every status, named
    for c in columns:
        table.add_column(c, justify="right" if c != "transport" else "left")
    for t, counts in summary["ports"].items():
        table.add_row(t, *(f"{counts[c]:,}" for c in columns[1:]))
    console.print(table)
