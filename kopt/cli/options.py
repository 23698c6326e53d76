"""Options that several commands share, each declared once as a ``typing.Annotated`` alias: a
command writes ``dry_run: DryRun = False`` and gets the same flag and help text as every other.
The default stays at the use site (``threads: Threads = 1``; ``()`` for a repeatable one, which
the command still gets as a list); ``None`` means "not given", so the settings model the command
fills decides.

An option that only looks shared (``--voices`` of ``kopt publish`` names voices to ship, of ``kopt
bench`` a voice pack to read) stays in its command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

DryRun = Annotated[bool, typer.Option("--dry-run", help="Print what would run (the recipe or settings) and exit; "
                                      "run nothing.")]
Threads = Annotated[Optional[int], typer.Option("--threads", help="Intra-op threads per onnxruntime session "
                                                "(0: onnxruntime's own choice).")]
VoicePack = Annotated[Optional[Path], typer.Option("--voices", help="Voice pack (.npz); default: the base "
                                                   "artifact's.")]
Voice = Annotated[Optional[str], typer.Option("--voice", help="Voice name in the pack (default: its first).")]
Categories = Annotated[Optional[List[str]], typer.Option("--category", help="Text categories (repeatable): short, "
                                                         "medium, long.")]
ResultsOut = Annotated[Optional[Path], typer.Option("--out", help="Results JSONL (default: <artifacts>/results/"
                                                    "<run_id>.jsonl).")]
ResultJson = Annotated[Optional[Path], typer.Option("--out", help="Also write the result as JSON here (what --json "
                                                    "prints).")]
SettingsFile = Annotated[Optional[Path], typer.Option("--settings", help="Settings file (TOML/JSON) with [select] "
                                                      "and [compare] tables.")]
MinBounds = Annotated[List[str], typer.Option("--min", help="Constraint [PROVIDER:]METRIC=VALUE (repeatable), e.g. "
                                              "pesq_wb_aligned=4.0 or CUDAExecutionProvider:dnsmos_ovrl=3.0.")]
MaxBounds = Annotated[List[str], typer.Option("--max", help="Constraint [PROVIDER:]METRIC=VALUE (repeatable), e.g. "
                                              "size_mb=100.")]
Blends = Annotated[List[str], typer.Option("--blend", help="Add a blended voice: NAME=a:0.7,b:0.3 (repeatable).")]
PassSets = Annotated[List[str], typer.Option("--set", "-s", help="Config of the last --pass before it: key=value "
                                             "(value parsed as JSON when it can be: 64, true, [32,64]).")]
VariantName = Annotated[Optional[str], typer.Option("--name", help="Variant name (default: the pass names).")]

