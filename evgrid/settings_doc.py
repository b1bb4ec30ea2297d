"""docs/configuration.md, written from the settings classes' fields and docstrings.

`python -m evgrid.settings_doc` rewrites the page; `--check` exits 1 when the committed page
differs (the test suite runs the same comparison). The page is generated so that it cannot
drift from the code: a field's docstring is its one description, its default is stated once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from evgrid.settings import (
    ENV_PREFIX,
    ConsumerGroupSettings,
    GatewaySettings,
    KafkaSettings,
    SqlSettings,
    TopicNames,
    VenSettings,
    WebHost,
    WorkerSettings,
)
from evgrid.settings.worker import INTERNAL_TOPICS

PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


@dataclass(frozen=True)
class Section:
    """One table of the page: the fields of `model` that `keep` accepts, as variables
    named `prefix` + the field name in upper case."""

    title: str
    model: type[BaseModel]
    intro: str = ""
    prefix: str = ENV_PREFIX
    keep: Callable[[str], bool] = lambda name: True
    #: An extra column: its title, and its cell for a field name.
    column: tuple[str, Callable[[str], str]] | None = None


def own(cls: type[BaseModel], base: type[BaseModel], *,
        advanced: bool = False) -> Callable[[str], bool]:
    """The fields `cls` adds to `base`: its ordinary ones, or its advanced ones."""
    return lambda name: (name not in base.model_fields and name not in WebHost.model_fields
                         and name != "topics" and (name in cls.advanced) == advanced)


def _topic_users() -> dict[str, list[str]]:
    users: dict[str, list[str]] = {name: [] for name in TopicNames.model_fields}
    for cls in (WorkerSettings, GatewaySettings, VenSettings, SqlSettings):
        for name in cls.topics_used or TopicNames.model_fields:
            users[name].append(cls.command)
    return users


def _used_by(name: str) -> str:
    return ", ".join(_topic_users()[name])


TOPICS_INTRO = ("The topics evgrid shares with chargers' gateways, grid operators and "
                "dashboards. Every process reads these variables, so one environment "
                "configures a deployment alike; topics joined by zone must all have "
                "`EVGRID_PARTITIONS` partitions. Each process creates the topics it uses when "
                "they are missing, and refuses to start, naming the topic, when an existing "
                "one does not match.")


def _internal_topics() -> str:
    rows = "\n".join(f"| `<app id>-{suffix}` | {cell(holds)} |"
                      for suffix, holds in INTERNAL_TOPICS.values())
    return ("Topics only evgrid's workers read and write are not settable: their names "
            "derive from `EVGRID_APP_ID`, like Faust's changelog topics "
            "(`<app id>-<table>-changelog`). Two deployments on one cluster, or two test "
            "runs, keep them apart with their own app id.\n\n| topic | holds |\n"
            "| --- | --- |\n" + rows)


#: The sections of the page, in order: what every process reads, then one section per
#: process, the advanced knobs, and the topics.
SECTIONS: tuple[Section, ...] = (
    Section("Every process", KafkaSettings, keep=own(KafkaSettings, BaseModel),
            intro="Read by every command: the broker and its security, the app id, and how "
                  "topics are created. `evgrid simulate` and `evgrid report` read only these "
                  "and the topic names. An incomplete TLS or SASL combination stops the "
                  "process at start with the variable to set."),
    Section("Consumer groups (worker, gateway, sink)", ConsumerGroupSettings,
            keep=own(ConsumerGroupSettings, KafkaSettings),
            intro="Read by the processes that consume in a Kafka consumer group: "
                  "`evgrid worker`, `evgrid gateway` and `evgrid sql`."),
    Section("Web port (worker, VEN, sink)", WebHost,
            intro="Read by the processes that serve `/health` and `/metrics`: `evgrid "
                  "worker`, `evgrid openadr` and `evgrid sql`; each has its own port setting "
                  "below."),
    Section("Worker (`evgrid worker`)", WorkerSettings,
            keep=own(WorkerSettings, ConsumerGroupSettings),
            intro="The control loop's knobs, the worker's state and its web port. `evgrid "
                  "demo` and `evgrid bench` start workers with these too. The defaults of "
                  "the control loop's knobs are `evgrid.core.types.Tunables`'s: the pure "
                  "core, which reads them, states each default once, and the settings class "
                  "takes it from there (the core stays free of pydantic and of the "
                  "environment, and `Tunables()` in a test is the production default)."),
    Section("OCPP gateway (`evgrid gateway`)", GatewaySettings,
            keep=own(GatewaySettings, ConsumerGroupSettings)),
    Section("OpenADR VEN (`evgrid openadr`)", VenSettings, keep=own(VenSettings, KafkaSettings)),
    Section("PostgreSQL sink (`evgrid sql`)", SqlSettings,
            keep=own(SqlSettings, ConsumerGroupSettings),
            intro="See [sql.md](sql.md): the schema, the views, retention and the read-only "
                  "role."),
    Section("Advanced (worker)", WorkerSettings,
            keep=own(WorkerSettings, ConsumerGroupSettings, advanced=True),
            intro="Internal knobs an operator normally leaves alone; the tests and the bench "
                  "set them to run faster. The other internal figures (RocksDB memory per "
                  "table partition, records per fetch and per poll, how often the ingest "
                  "gives way, how much of a rejected message a dead letter keeps) are "
                  "constants in the modules that use them."),
    Section("Topic names", TopicNames, prefix=ENV_PREFIX + "TOPIC_", intro=TOPICS_INTRO,
            column=("used by `evgrid`", _used_by)),
)

HEADER = """# Configuration

<!-- Generated by `python -m evgrid.settings_doc` (`make docs`) from the settings classes;
     do not edit. -->

Every setting is an environment variable. Each process reads only its own (its `--help`
lists them: `evgrid worker --help`, `evgrid gateway --help`, ...) once at start; a value that
does not validate stops it with the variable's name and what is wrong. Empty values count
as unset; variables of other processes are ignored, so one environment can serve them all.
"""

FOOTER_TITLE = "Internal topics"


def type_name(annotation: Any) -> str:
    """A short, readable name of a field's type."""
    origin = get_origin(annotation)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in get_args(annotation))
    if origin in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not NoneType]
        return type_name(args[0]) if len(args) == 1 else " \\| ".join(map(type_name, args))
    if annotation is Path:
        return "path"
    return getattr(annotation, "__name__", str(annotation))


def bounds(info: FieldInfo) -> str:
    """The field's numeric constraints, e.g. `≥ 0`, `1–3`."""
    found: dict[str, Any] = {}
    for meta in info.metadata:
        for key in ("ge", "gt", "le", "lt", "min_length", "max_length"):
            value = getattr(meta, key, None)
            if value is not None:
                found[key] = value
    parts = [f"{sym} {found[key]}" for key, sym in
             (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")) if key in found]
    if "max_length" in found:
        parts.append(f"{found.get('min_length', 0)}–{found['max_length']} characters")
    return ", ".join(parts)


def default_text(info: FieldInfo) -> str:
    default = info.default
    if default is PydanticUndefined or default is None:
        return "—"
    if default == "":
        return "(empty)"
    return f"`{default}`"


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render_section(section: Section) -> str:
    lines = [f"## {section.title}", ""]
    if section.intro:
        lines += [section.intro, ""]
    extra = f" {section.column[0]} |" if section.column else ""
    lines += [f"| variable | default | type | meaning |{extra}",
              "| --- | --- | --- | --- |" + (" --- |" if extra else "")]
    for name, info in section.model.model_fields.items():
        if not section.keep(name):
            continue
        kind = type_name(info.annotation)
        limits = bounds(info)
        if limits:
            kind = f"{kind}, {limits}"
        variable = f"`{section.prefix}{name.upper()}`"
        more = f" {section.column[1](name)} |" if section.column else ""
        lines.append(f"| {variable} | {default_text(info)} | {kind} | "
                     f"{cell(info.description or '')} |{more}")
    return "\n".join(lines) + "\n"


def render(sections: Sequence[Section] = SECTIONS) -> str:
    """The whole page for the given sections."""
    return (HEADER + "".join("\n" + render_section(s) for s in sections)
            + f"\n## {FOOTER_TITLE}\n\n{_internal_topics()}\n")


def undocumented(sections: Sequence[Section] = SECTIONS) -> list[str]:
    """Fields without a docstring: each must say what it does."""
    return [f"{s.model.__name__}.{name}" for s in sections
            for name, info in s.model.model_fields.items()
            if s.keep(name) and not info.description]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evgrid.settings_doc", description=__doc__)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when the page is not what the settings say")
    parser.add_argument("--out", type=Path, default=PAGE)
    args = parser.parse_args(argv)
    page = render()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != page:
            print(f"{args.out} is stale: run `python -m evgrid.settings_doc`", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
