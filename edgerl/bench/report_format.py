"""A bench report as text: a terminal table or Markdown for reports (same content)."""

from __future__ import annotations

from typing import Any

COLUMNS = ("model", "backend", "batch", "params", "MACs", "ONNX KiB", "p50 us", "p90 us", "p99 us", "max us", "n")


def _int(v: int | None) -> str:
    return "-" if v is None else f"{v:,}"


def _us(v: float) -> str:
    return f"{v:,.1f}" if v < 10_000 else f"{v:,.0f}"


def _rows(report: dict[str, Any]) -> list[list[str]]:
    return [[r["model"] + (" (baseline)" if r["role"] == "baseline" else ""), r["backend"], str(r["batch"]),
             _int(r["params"]), _int(r["macs"]), f"{r['file_bytes'] / 1024:,.1f}",
             *(_us(r[k]) for k in ("p50_us", "p90_us", "p99_us", "max_us")), f"{r['n']:,}"]
            for r in report["results"]]


def device_line(device: dict[str, Any]) -> str:
    """One line: CPU, cores, threads, OS, library versions (and the Jetson state, if any)."""
    v = device.get("versions", {})
    libs = ", ".join(f"{k} {v[k]}" for k in ("numpy", "onnxruntime", "onnxruntime-gpu", "torch", "tensorrt") if k in v)
    line = (f"{device.get('cpu_model')}, {device.get('cpu_count')} cores, {device.get('threads')} thread(s); "
            f"{device.get('os')}; python {device.get('python')}; {libs}")
    jetson = device.get("jetson")
    if jetson:
        mode = (jetson.get("nvpmodel") or {}).get("mode", "?")
        clocks = jetson.get("jetson_clocks") or {}
        line += f"; Jetson L4T {jetson.get('l4t')}, nvpmodel {mode}, jetson_clocks " + (
            "on" if clocks.get("on") else "off" if "on" in clocks else "unknown")
    return line


def _ratio_lines(report: dict[str, Any]) -> list[str]:
    return [f"{r['model']} / {r['baseline']}  {r['backend']:<8} batch {r['batch']:<4} "
            f"p50 {r['p50']:.3f}  p90 {r['p90']:.3f}  p99 {r['p99']:.3f}" for r in report["ratios"]]


def _overhead_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for o in report["overhead"]:
        if "skipped" in o:
            lines.append(f"{o['model']}: not measured ({o['skipped']})")
            continue
        verdict = "within" if o["within_goal"] else "ABOVE"
        lines.append(f"{o['model']}: Policy.act p50 {_us(o['act']['p50_us'])} us / bare InferenceSession.run p50 "
                     f"{_us(o['bare']['p50_us'])} us = {o['ratio']:.3f} ({verdict} goal <= {o['goal']:.2f}); "
                     f"backend run_single p50 {_us(o['backend_run_single']['p50_us'])} us; act/bare p99 "
                     f"{o['ratio_p99']:.3f}; ort-cpu batch 1, {o['threads']} thread(s)")
    return lines


def _skip_lines(report: dict[str, Any]) -> list[str]:
    return [f"{s['backend']}" + (f" for {s['model']}" if s["model"] else "") + f": {s['reason']}"
            for s in report["skipped"]]


def format_table(report: dict[str, Any]) -> str:
    """Plain-text report for a terminal."""
    rows = [list(COLUMNS), *_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    left = {0, 1}
    table = ["  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    out = [f"device    {device_line(report['device'])}", "", *table]
    for title, lines in (("ratios (model / baseline)", _ratio_lines(report)),
                         ("runtime overhead", _overhead_lines(report)),
                         ("skipped", _skip_lines(report)), ("notes", report.get("notes", []))):
        if lines:
            out += ["", f"{title}:", *(f"  {ln}" for ln in lines)]
    return "\n".join(out)


def format_markdown(report: dict[str, Any]) -> str:
    """Markdown report: device line, results table, ratio table, overhead and skipped lists."""
    out = [f"**Device:** {device_line(report['device'])}", "",
           "| " + " | ".join(COLUMNS) + " |", "|" + "|".join(["---", "---"] + ["---:"] * (len(COLUMNS) - 2)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in _rows(report)]
    if report["ratios"]:
        out += ["", "| model / baseline | backend | batch | p50 | p90 | p99 |", "|---|---|---:|---:|---:|---:|"]
        out += [f"| {r['model']} / {r['baseline']} | {r['backend']} | {r['batch']} | {r['p50']:.3f} | "
                f"{r['p90']:.3f} | {r['p99']:.3f} |" for r in report["ratios"]]
    for title, lines in (("Runtime overhead", _overhead_lines(report)), ("Skipped", _skip_lines(report)),
                         ("Notes", report.get("notes", []))):
        if lines:
            out += ["", f"**{title}:**", "", *(f"- {ln}" for ln in lines)]
    return "\n".join(out) + "\n"
