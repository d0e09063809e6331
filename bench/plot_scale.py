#!/usr/bin/env python3
"""Scale curves of faust for Rust, measured and drawn.

Runs the scale workloads of faust-bench (each point in a fresh process),
saves their JSON lines to docs/img/scale.jsonl and draws one PNG per curve
into docs/img (log-scaled x axes; throughput, latency and peak RSS in
panels sharing the x axis):

    bench/plot_scale.py                          # memory:// curves
    bench/plot_scale.py --kafka 127.0.0.1:29092  # and the Kafka ones
    bench/plot_scale.py --from docs/img/scale.jsonl   # redraw saved lines
    bench/plot_scale.py --curves asks --asks 2000     # one curve, smaller

Needs matplotlib (bench/requirements-plot.txt); when it is missing the
script installs it into target/plot-venv and runs itself from there. With
--kafka it deletes the broker's bench-* topics at the end (--keep-topics
keeps them), as scripts/bench.sh does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "target" / "plot-venv"
REQUIREMENTS = ROOT / "bench" / "requirements-plot.txt"

# Each curve: its workloads (memory first, Kafka after), its x axis, and
# whether ask latencies get a panel.
CURVES = {
    "agents": {
        "workloads": ["scale-agents"],
        "x": "agents in one app (each on its own topic)",
        "rate": "events/s",
    },
    "partitions": {
        "workloads": ["scale-partitions", "scale-kafka-partitions"],
        "x": "partitions of the input topic",
        "rate": "events/s",
    },
    "asks": {
        "workloads": ["scale-asks", "scale-kafka-asks"],
        "x": "asks in flight",
        "rate": "asks/s",
        "latency": True,
    },
    "join": {
        "workloads": ["scale-join", "scale-kafka-join"],
        "x": "values in one agent.join",
        "rate": "values/s",
    },
}


def ensure_matplotlib() -> None:
    """Import matplotlib, or install it into target/plot-venv and re-run
    this script with that interpreter."""
    try:
        import matplotlib  # noqa: F401

        return
    except ImportError:
        pass
    python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve():
        sys.exit(f"plot_scale.py: matplotlib missing in {VENV}; delete it and retry")
    if not python.exists():
        log(f"installing matplotlib into {VENV.relative_to(ROOT)}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)],
        check=True,
    )
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


def log(msg: str) -> None:
    print(f"plot_scale.py: {msg}", file=sys.stderr, flush=True)


def machine() -> str:
    """Cores, CPU model, memory and kernel of this machine, in one line."""
    model, mem_kb = "", 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
                break
    except OSError:
        pass
    parts = [f"{os.cpu_count()} cores"]
    if model:
        parts.append(model)
    if mem_kb:
        parts.append(f"{mem_kb / 1024 / 1024:.0f} GiB")
    parts.append(f"Linux {platform.release()}")
    return ", ".join(parts)


def measure(args: argparse.Namespace, jsonl: Path) -> list[dict]:
    """Run the selected curves' workloads; every line goes to `jsonl` as it
    comes."""
    exe = ROOT / "target" / "release" / "faust-bench"
    if not exe.exists():
        sys.exit(f"plot_scale.py: {exe} missing: cargo build --release -p faust-bench")
    common = ["--repeat", str(args.repeat), "--timeout", str(args.timeout)]
    per_workload = {
        "scale-agents": ["--events", str(args.events)],
        "scale-partitions": ["--events", str(args.events), "--concurrency", "1,4"],
        "scale-asks": ["--asks", str(args.asks)],
        "scale-join": [],
        "scale-kafka-partitions": [
            "--kafka-events",
            str(args.kafka_events),
            "--concurrency",
            "1,4",
            "--points",
            args.kafka_partitions,
        ],
        "scale-kafka-asks": ["--asks", str(args.kafka_asks)],
        "scale-kafka-join": ["--points", args.kafka_join],
    }
    lines: list[dict] = []
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    with jsonl.open("w") as out:
        for curve in args.curves:
            for w in CURVES[curve]["workloads"]:
                kafka = "-kafka-" in w
                if kafka and not args.kafka:
                    continue
                cmd = [str(exe), "--workload", w, *common, *per_workload[w]]
                if kafka:
                    cmd += ["--kafka", args.kafka]
                log(" ".join(cmd[1:]))
                run = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
                for line in run.stdout.splitlines():
                    if line.startswith("{"):
                        out.write(line + "\n")
                        out.flush()
                        lines.append(json.loads(line))
                if run.returncode != 0:
                    log(f"{w}: faust-bench exited with {run.returncode} (failed points are not drawn)")
    return lines


def delete_topics(bootstrap: str) -> None:
    cmd = [
        str(ROOT / "scripts" / "kafka.sh"),
        "tool",
        "org.apache.kafka.tools.TopicCommand",
        "--bootstrap-server",
        bootstrap,
        "--delete",
        "--if-exists",
        "--topic",
        "bench-.*",
    ]
    try:
        subprocess.run(cmd, check=True, timeout=120, stdout=sys.stderr)
        log(f"deleted the bench-* topics on {bootstrap} (--keep-topics keeps them)")
    except (subprocess.SubprocessError, OSError) as e:
        log(f"could not delete the bench-* topics on {bootstrap}: {e}")


def series(lines: list[dict], workload: str) -> dict[int, list[dict]]:
    """The ok points of a workload, by concurrency, sorted by x."""
    by_c: dict[int, list[dict]] = {}
    for m in lines:
        if m.get("workload") != workload or m.get("point") is None:
            continue
        if m.get("status") != "ok":
            log(f"{workload} x={m['point']} c={m['concurrency']}: {m['status']}: {m.get('reason')}")
            continue
        by_c.setdefault(m["concurrency"], []).append(m)
    for pts in by_c.values():
        pts.sort(key=lambda m: m["point"])
    return dict(sorted(by_c.items()))


def label(workload: str, c: int, several: bool) -> str:
    where = "Kafka" if "-kafka-" in workload else "memory://"
    return f"{where}, concurrency {c}" if several else where


def runtime_of(lines: list[dict]) -> str:
    for m in lines:
        setup = m.get("setup") or ""
        if "tokio" in setup:
            return setup.rsplit("; ", 1)[-1].split("; best of")[0]
    return ""


def sizes_of(curve: str, lines: list[dict]) -> str:
    """The per-point sizes, for the title."""
    if curve == "join":
        return "one join per point"
    unit = "asks" if curve == "asks" else "events"
    parts = []
    for where in ("memory://", "Kafka"):
        ns = sorted({m["events"] for m in lines if ("-kafka-" in m["workload"]) == (where == "Kafka")})
        if ns:
            fmt = [f"{n:,}".replace(",", " ") for n in (ns[0], ns[-1])]
            parts.append(f"{where} {fmt[0] if len(ns) == 1 else '–'.join(fmt)}")
    return f"{unit} per point: {', '.join(parts)}"


def draw(curve: str, lines: list[dict], out_dir: Path, where: str) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    spec = CURVES[curve]
    data = [(w, series(lines, w)) for w in spec["workloads"]]
    data = [(w, s) for w, s in data if s]
    if not data:
        log(f"{curve}: no points to draw")
        return None
    mine = [m for _, s in data for pts in s.values() for m in pts]
    panels = 3 if spec.get("latency") else 2
    fig, axes = plt.subplots(panels, 1, sharex=True, figsize=(7.5, 2.6 * panels + 1.2))
    rate_ax, rss_ax = axes[0], axes[-1]
    lat_ax = axes[1] if panels == 3 else None
    markers = iter("osD^vP*X")
    for w, by_c in data:
        for c, pts in by_c.items():
            xs = [m["point"] for m in pts]
            name = label(w, c, len(by_c) > 1)
            mk = next(markers)
            line = rate_ax.plot(xs, [m["events_per_sec"] for m in pts], marker=mk, label=name)[0]
            color = line.get_color()
            # The first point's rate: constant cost per event. Falling below
            # it is cost per event growing with x (for join, total cost
            # growing faster than linear). Not for asks: x is not work there.
            if not spec.get("latency"):
                rate_ax.plot(
                    [xs[0], xs[-1]],
                    [pts[0]["events_per_sec"]] * 2,
                    linestyle=":",
                    color=color,
                    linewidth=1,
                )
            rss_ax.plot(xs, [m["peak_rss_mb"] for m in pts], marker=mk, color=color, label=name)
            if lat_ax is not None:
                lat_ax.plot(xs, [m["p50_us"] / 1000 for m in pts], marker=mk, color=color, label=f"{name} p50")
                lat_ax.plot(
                    xs,
                    [m["p99_us"] / 1000 for m in pts],
                    marker=mk,
                    color=color,
                    linestyle="--",
                    label=f"{name} p99",
                )
    rate_ax.set_ylabel(spec["rate"])
    rate_ax.set_yscale("log")
    rate_ax.legend(
        fontsize="small",
        title=None if spec.get("latency") else "dotted: the first point's rate",
        title_fontsize="x-small",
    )
    if lat_ax is not None:
        lat_ax.set_ylabel("round trip, ms")
        lat_ax.set_yscale("log")
        lat_ax.legend(fontsize="x-small", ncol=2)
    rss_ax.set_ylabel("peak RSS, MiB")
    rss_ax.set_yscale("log")
    rss_ax.set_xscale("log")
    rss_ax.set_xlabel(spec["x"])
    plain = FuncFormatter(lambda v, _: f"{v:,.0f}".replace(",", " ") if v >= 1 else f"{v:g}")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ys = [y for line in ax.get_lines() for y in line.get_ydata() if y > 0]
        span = max(ys) / min(ys) if ys else 10
        subs = (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9) if span < 4 else range(1, 10) if span < 8 else (1, 2, 5) if span < 200 else (1,)
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(NullFormatter())
    rss_ax.set_xticks(sorted({m["point"] for m in mine}))
    rss_ax.xaxis.set_major_formatter(plain)
    rss_ax.xaxis.set_minor_formatter(NullFormatter())
    broker = "; Kafka: one local KRaft broker (scripts/kafka.sh)" if any("-kafka-" in w for w, _ in data) else ""
    fig.suptitle(
        f"faust-rs scale: {curve} ({sizes_of(curve, mine)}, each point a fresh process)\n"
        f"{where}\n{runtime_of(mine)}{broker}",
        fontsize="small",
    )
    fig.tight_layout()
    path = out_dir / f"scale-{curve}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="source", type=Path, help="draw these saved JSON lines instead of measuring")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="where the PNGs (and scale.jsonl) go")
    p.add_argument(
        "--curves",
        type=lambda s: s.split(","),
        default=list(CURVES),
        help="curves to measure and draw: " + ",".join(CURVES),
    )
    p.add_argument("--kafka", help="Kafka bootstrap server: also measure the Kafka curves there")
    p.add_argument("--keep-topics", action="store_true", help="keep the bench-* topics on the broker")
    p.add_argument("--events", type=int, default=300_000, help="events per point of agents and partitions")
    p.add_argument("--kafka-events", type=int, default=300_000, help="preloaded events per point on Kafka")
    p.add_argument("--asks", type=int, default=20_000, help="asks per point in memory (at least 10 x in flight)")
    p.add_argument("--kafka-asks", type=int, default=3_000, help="asks per point on Kafka (at least 10 x in flight)")
    p.add_argument("--kafka-partitions", default="8,32,128,512,1024", help="partition counts on Kafka")
    p.add_argument("--kafka-join", default="1000,10000,100000", help="join sizes on Kafka")
    p.add_argument("--repeat", type=int, default=1, help="best of N fresh processes per point")
    p.add_argument("--timeout", type=int, default=600, help="seconds one point may take")
    args = p.parse_args()
    unknown = [c for c in args.curves if c not in CURVES]
    if unknown:
        p.error(f"unknown curve(s) {','.join(unknown)}; known: {','.join(CURVES)}")
    ensure_matplotlib()

    if args.source:
        lines = [json.loads(line) for line in args.source.read_text().splitlines() if line.startswith("{")]
        saved = args.source.parent / "scale-machine.txt"
        where = saved.read_text().strip() if saved.exists() else machine()
    else:
        where = machine()
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "scale-machine.txt").write_text(where + "\n")
        try:
            lines = measure(args, args.out / "scale.jsonl")
        finally:
            if args.kafka and not args.keep_topics:
                delete_topics(args.kafka)
    for curve in args.curves:
        path = draw(curve, lines, args.out, where)
        if path:
            log(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


if __name__ == "__main__":
    main()
