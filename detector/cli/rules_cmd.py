"""`detector rules show`: print the loaded rules."""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Any

import orjson

from detector.cli.common import add_rule_option, rules_from_args
from detector.rules.model import Rule
from detector.rules.prefilter import Prefilter
from detector.sources import SOURCES, VERBATIM_FIELDS


def register(sub: Any) -> None:
    p = sub.add_parser("rules", help="inspect the loaded rules", description="Inspect the loaded rules.")
    rsub = p.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    show = rsub.add_parser(
        "show",
        help="print the loaded rule(s): metadata, query, ATT&CK mapping, investigation guide",
        description="Print the loaded rule(s): metadata, query, ATT&CK mapping and investigation guide.",
    )
    add_rule_option(show)
    show.add_argument("--json", action="store_true", help="print the rules as JSON (Kibana's rule parameters)")
    show.set_defaults(func=run_show)


def _threat_lines(rule: Rule) -> list[str]:
    lines = []
    for t in rule.threat:
        tactic = t.get("tactic", {})
        techniques = ", ".join(f"{x.get('id')} {x.get('name')}" for x in t.get("technique", []))
        lines.append(f"{t.get('framework', '?')}: {tactic.get('id')} {tactic.get('name')} / {techniques or '-'}")
    return lines


def run_show(args: argparse.Namespace) -> int:
    rules = rules_from_args(args)
    if args.json:
        for r in rules:
            sys.stdout.buffer.write(orjson.dumps(r.as_kibana_rule(), option=orjson.OPT_INDENT_2) + b"\n")
        return 0
    prefilter = Prefilter.for_queries([r.compiled for r in rules], VERBATIM_FIELDS)
    out = []
    for r in rules:
        out += [
            f"{r.name}",
            f"  rule_id      {r.rule_id}   version {r.version}",
            f"  file         {r.path}",
            f"  severity     {r.severity}   risk score {r.risk_score}",
            f"  schedule     every {r.interval}, look-back from {r.from_}, at most {r.max_signals} alerts per run",
            f"  index        {', '.join(r.index)}",
            "  threat       " + "\n               ".join(_threat_lines(r) or ["-"]),
            f"  tags         {', '.join(r.tags)}",
            f"  references   {', '.join(r.references)}",
            "  query",
            textwrap.indent(r.query.strip(), "    "),
            f"  fields read  {', '.join(sorted(r.compiled.fields))}",
        ]
        if r.description:
            out += ["  description", textwrap.indent(textwrap.fill(r.description, 100), "    ")]
        if r.note:
            out += ["  investigation guide", textwrap.indent(r.note.strip(), "    ")]
        out.append("")
    out.append(f"prefilter: {prefilter.describe()}")
    out.append(f"sources: {', '.join(SOURCES)}")
    print("\n".join(out))
    return 0
