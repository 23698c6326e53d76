"""One self-contained HTML page: inline CSS, PNGs and FLAC clips embedded as base64 data URIs, no script, no
network."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

CSS = """
:root{--fg:#1d2530;--muted:#5b6775;--line:#dde2e8;--bg:#f6f7f9;--card:#fff;--win:#d62728;--ok:#2a7d3f;--bad:#b3261e}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
  color:var(--fg);background:var(--bg)}
main{max-width:1320px;margin:0 auto;padding:20px 24px 48px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:14px;margin:14px 0 6px}
p.meta{color:var(--muted);margin:2px 0;font-size:12.5px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.card .prov{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.card .win{font-size:18px;font-weight:600;color:var(--win);margin:2px 0 6px;word-break:break-all}
.card .none{font-size:16px;font-weight:600;color:var(--bad);margin:2px 0 6px}
.card .why{font-size:12.5px;color:var(--muted)}
.card dl{display:grid;grid-template-columns:auto 1fr;gap:1px 10px;margin:6px 0;font-size:12.5px}
.card dt{color:var(--muted)} .card dd{margin:0;font-variant-numeric:tabular-nums}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:14px}
figure{margin:0;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:8px}
figure img{display:block;width:100%;height:auto}
figcaption{font-size:12px;color:var(--muted);padding:4px 2px 0}
.tablewrap{overflow-x:auto;background:var(--card);border:1px solid var(--line);border-radius:8px}
table{border-collapse:collapse;width:100%;font-size:12px;font-variant-numeric:tabular-nums}
th,td{padding:4px 6px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top;white-space:nowrap}
th{white-space:normal;vertical-align:bottom;min-width:3.5em}
td.wrap{white-space:normal;min-width:260px}
th{background:#eef1f5;position:sticky;top:0}
tr:nth-child(even) td{background:#fafbfc}
tr.winner td{background:#fdecec;font-weight:600}
tr.failed td,tr.skipped td{color:var(--muted)}
td.num{text-align:right;white-space:nowrap}
.mono,td.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:11.5px;color:var(--muted)}
.pill{display:inline-block;padding:0 6px;border-radius:9px;font-size:11.5px;background:#eef1f5}
.pill.ok{background:#e3f3e7;color:var(--ok)} .pill.bad{background:#fbe3e1;color:var(--bad)}
ul.notes{margin:6px 0 0 18px;padding:0;color:var(--muted);font-size:12.5px}
.sentence{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:8px 12px;margin:0 0 10px}
.sentence h3{margin:2px 0 8px;font-weight:500}
.players{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:8px 12px}
.player{font-size:12px}
.player .who{display:flex;gap:6px;align-items:baseline;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.player.reference .who b{color:var(--ok)} .player.winner .who b{color:var(--win)}
.player audio{width:100%;height:32px}
.player .sub{color:var(--muted);font-size:11.5px;margin-bottom:2px}
figure.wide{grid-column:1/-1}
"""


@dataclass
class Section:
    title: str
    body: str


@dataclass
class Page:
    title: str
    meta: list[str] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)

    def add(self, title: str, body: str) -> None:
        self.sections.append(Section(title, body))

    def render(self) -> str:
        meta = "".join(f'<p class="meta">{m}</p>' for m in self.meta)
        secs = "".join(f"<section><h2>{esc(s.title)}</h2>{s.body}</section>" for s in self.sections)
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                "<link rel=\"icon\" href=\"data:,\">"
                f"<title>{esc(self.title)}</title><style>{CSS}</style></head>"
                f"<body><main><h1>{esc(self.title)}</h1>{meta}{secs}</main></body></html>\n")


def esc(s: Any) -> str:
    return html.escape("" if s is None else str(s), quote=True)


def image(path: Path, caption: str, alt: str | None = None) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure><img alt="{esc(alt or caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def plots(items: Sequence[tuple[Path, str]]) -> str:
    return '<div class="plots">' + "".join(image(p, c) for p, c in items) + "</div>"


def table(df, *, row_class: Sequence[str] | None = None, numeric: Sequence[str] = (),
          wrap: Sequence[str] = ("reason", "status"), mono: Sequence[str] = ()) -> str:
    """A DataFrame as an escaped HTML table; optional per-row CSS classes. Numeric columns are right-aligned,
    ``wrap`` columns wrap when long, ``mono`` ones (keys) are set in a fixed-width font. The table scrolls
    inside its frame when it is wider than the page, never the page itself."""
    if df is None or df.empty:
        return "<p class=\"meta\">(no rows)</p>"
    cols = list(df.columns)
    head = "".join(f"<th>{esc(c)}</th>" for c in cols)
    body = []
    for i, (_, r) in enumerate(df.iterrows()):
        cls = f' class="{esc(row_class[i])}"' if row_class and row_class[i] else ""
        cells = "".join(f'<td class="num">{esc(_cell(r[c]))}</td>' if c in numeric
                        else f'<td class="wrap">{esc(_cell(r[c]))}</td>' if c in wrap and len(str(r[c])) > 40
                        else f'<td class="mono">{esc(_cell(r[c]))}</td>' if c in mono
                        else f"<td>{esc(_cell(r[c]))}</td>" for c in cols)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f'<div class="tablewrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _cell(v: Any) -> Any:
    try:
        import math

        if isinstance(v, float) and math.isnan(v):
            return ""
    except TypeError:
        pass
    return v


def audio_player(label: str, key: str, role: str, src: str, seconds: float) -> str:
    """One labelled <audio> player with its clip embedded as a data URI."""
    tag = "".join(f'<span class="pill">{esc(r)}</span>' for r in role.split())
    return (f'<div class="player {esc(role)}"><div class="who"><b>{esc(label)}</b>{tag}</div>'
            f'<div class="sub"><span class="mono">{esc(key)}</span> {seconds:.2f} s</div>'
            f'<audio controls preload="metadata" src="{src}"></audio></div>')


def sentence(title: str, players: Sequence[str]) -> str:
    return f'<div class="sentence"><h3>{esc(title)}</h3><div class="players">{"".join(players)}</div></div>'


def wide_plot(path: Path, caption: str) -> str:
    return '<div class="plots">' + image(path, caption).replace("<figure>", '<figure class="wide">', 1) + "</div>"


def card(provider: str, winner: str | None, facts: Sequence[tuple[str, str]], why: str) -> str:
    head = f'<div class="win">{esc(winner)}</div>' if winner else '<div class="none">no winner</div>'
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
    return f'<div class="card"><div class="prov">{esc(provider)}</div>{head}<dl>{dl}</dl><div class="why">{esc(why)}</div></div>'


def cards(items: Sequence[str]) -> str:
    return '<div class="cards">' + "".join(items) + "</div>"


def notes(items: Sequence[str]) -> str:
    return '<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in items) + "</ul>" if items else ""
