"""The benchmark's rows and table: one dict per measurement, printed as
one table with chirp/peer ratios."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from harness import BenchError
from worker_util import KIB, MIB, now


def make_row(scenario: int, case: str, system: str, size: int | None, **kw: object) -> dict:
    """One row of the table (and of the JSON): what was measured, and KW."""
    r = {"scenario": scenario, "case": case, "system": system, "size": size}
    r.update(kw)
    return r


def fmt_size(size: int | None) -> str:
    """A message size as the table shows it: 64 B, 1 KiB, 1 MiB."""
    if size is None:
        return ""
    if size >= MIB and size % MIB == 0:
        return f"{size // MIB} MiB"
    if size >= KIB and size % KIB == 0:
        return f"{size // KIB} KiB"
    return f"{size} B"


def stream_row(
    scen: int,
    case: str,
    system: str,
    size: int,
    count: int,
    sres: dict,
    rres: dict | None,
    at: str = "recv",
    **kw: object,
) -> dict:
    """A row from sender and receiver results; rate at the receiver or sender."""
    rate = rres["rate"] if at == "recv" else sres["rate"]
    note = []
    failed = sres.get("failed", 0)
    if failed:
        note.append(f"{failed} failed: {sres.get('errors')}")
    if rres is not None and rres.get("received", count + 1) < count + 1:
        note.append(f"received {rres['received']} of {count + 1}")
    row = make_row(
        scen,
        case,
        system,
        size,
        count=count,
        rate=rate,
        mbps=rate * size / 1e6 if size else None,
        sender_rate=sres.get("rate"),
        p50_us=sres.get("p50_us"),
        p99_us=sres.get("p99_us"),
        note="; ".join(note),
        ok=not note,
    )
    row.update(kw)
    return row


def err_row(
    scen: int, case: str, system: str, size: int | None, why: str, skipped: bool = False
) -> dict:
    """A row without a rate: skipped (a peer is missing) or ERROR."""
    return make_row(
        scen,
        case,
        system,
        size,
        rate=None,
        note=("skipped: " if skipped else "ERROR: ") + why,
        ok=skipped,
        skipped=skipped,
    )


def guard(
    rows: list,
    scen: int,
    case: str,
    system: str,
    size: int | None,
    fn: Callable[[], dict | list[dict]],
    skip: str = "",
) -> None:
    """Run one measurement; a failure becomes an ERROR row, not a crash.
    SKIP says why it cannot run here (a peer is missing): then FN does not
    run and the row says skipped."""
    if skip:
        rows.append(err_row(scen, case, system, size, skip, True))
        return
    t = now()
    try:
        out = fn()
        rows.extend(out if isinstance(out, list) else [out])
    except (BenchError, OSError, subprocess.SubprocessError, ValueError, KeyError) as e:
        rows.append(err_row(scen, case, system, size, str(e)))
    except Exception as e:  # noqa: BLE001 - a harness bug: report it, go on
        rows.append(err_row(scen, case, system, size, f"{type(e).__name__}: {e}"))
    last = rows[-1] if rows else {}
    rate = last.get("rate")
    print(
        f"  [{scen}] {case:<28} {system:<22} {fmt_size(size):>7}  "
        + (f"{rate:>12,.0f} msg/s" if rate else f"{last.get('note', '')[:200]}")
        + f"  ({now() - t:.1f} s)",
        file=sys.stderr,
        flush=True,
    )


def add_ratios(rows: list[dict]) -> None:
    """Fill ratio = chirp / peer on the peer rows (same scenario, size and group)."""
    for r in rows:
        if not r.get("peer") or not r.get("rate"):
            continue
        for c in rows:
            if (
                c.get("ref")
                and c["scenario"] == r["scenario"]
                and c.get("size") == r.get("size")
                and c.get("group") == r.get("group")
                and (not r.get("vs") or c["system"] == r["vs"])
                and c.get("rate")
            ):
                r["ratio"] = c["rate"] / r["rate"]
                r["ratio_of"] = c["system"]
                break


def format_table(rows: list[dict]) -> str:
    """The rows as one text table, scenarios apart, and what it means."""
    head = (
        "#",
        "case",
        "system",
        "size",
        "msg/s",
        "MB/s",
        "chirp/peer",
        "p50 us",
        "p99 us",
        "note",
    )
    lines = []
    for r in rows:
        rate = r.get("rate")
        mbps = r.get("mbps")
        lines.append(
            (
                str(r["scenario"]),
                r["case"],
                r["system"],
                fmt_size(r.get("size")),
                f"{rate:,.0f}" if rate else ("-" if r.get("ok", True) else "ERROR"),
                f"{mbps:,.1f}" if mbps and (r.get("size") or 0) >= KIB else "",
                f"{r['ratio']:.2f}" if r.get("ratio") else "",
                f"{r['p50_us']:,.0f}" if r.get("p50_us") else "",
                f"{r['p99_us']:,.0f}" if r.get("p99_us") else "",
                r.get("note", "") or "",
            )
        )
    widths = [
        max(len(h), *(len(x[i]) for x in lines)) if lines else len(h) for i, h in enumerate(head)
    ]
    right = {0, 4, 5, 6, 7, 8}

    def fmt(cells: list[str] | tuple[str, ...]) -> str:
        out = []
        for i, c in enumerate(cells):
            if i == len(cells) - 1:
                out.append(c)
            else:
                out.append(c.rjust(widths[i]) if i in right else c.ljust(widths[i]))
        return "  ".join(out).rstrip()

    text = [fmt(head), fmt(["-" * w for w in widths[:-1]] + ["----"])]
    last = None
    for r, cells in zip(rows, lines, strict=True):
        if last is not None and r["scenario"] != last:
            text.append("")
        last = r["scenario"]
        text.append(fmt(cells))
    text.append("")
    text.append(
        "chirp/peer: the chirp row's rate over this peer row's rate (same scenario and "
        "size); scenario 4: TLS over plaintext."
    )
    text.append(
        "rates: stream scenarios at the receiver (first to last message); synchronous "
        "and request/reply at the sender."
    )
    return "\n".join(text)
