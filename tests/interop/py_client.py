"""A Python Faust client calling the Rust agents of examples/interop.rs.

Every Rust agent is declared twice: once with Faust's default
use_reply_headers=True and once with use_reply_headers=False. Faust takes the
mode from the *caller's* declaration, so the second one sends ReqRepRequest
envelopes. The bodies never run here: this process only starts as a client.
"""
import asyncio
import json
import os
import sys
import time

from common import (
    TRACEPARENT, Add, Checks, Line, Point, Total, current_span_ids, expect, log, make_app,
    setup_tracing, topic_name,
)

app = make_app("pyclient")
setup_tracing(app)
MODES = {"headers": True, "envelope": False}
RUST_AGENTS = [
    "double", "shout", "total", "keys", "add", "shapes", "fail", "collect", "seen", "adds_seen",
    "trace",
]


def remote(name, mode):
    async def runs_in_rust(stream):
        async for value in stream:
            yield value

    return app.agent(
        topic_name("rs-" + name),
        name=f"{name}_{mode}",
        use_reply_headers=MODES[mode],
    )(runs_in_rust)


AGENTS = {(n, m): remote(n, m) for n in RUST_AGENTS for m in MODES}


def canonical(values):
    return sorted(json.dumps(v, sort_keys=True) for v in values)


async def ask_is(agent, value, want):
    return expect(await agent.ask(value=value), want)


async def ask_record(agent):
    total = await agent.ask(value=Add(a=2, b=3))
    if not isinstance(total, Total):
        return f"got {total!r} ({type(total).__name__}), want a Total record"
    return expect(total.total, 5)


async def ask_typed(agent, value, cls, want):
    """Ask; the reply must be a `cls` record whose fields are `want`."""
    got = await agent.ask(value=value)
    if not isinstance(got, cls):
        return f"got {got!r} ({type(got).__name__}), want a {cls.__name__} record"
    return expect(got.asdict(), want)


async def ask_line(agent):
    """The Rust agent answers a Point with a Line of two nested Points."""
    got = await agent.ask(value=Point(x=5, y=6))
    if not isinstance(got, Line):
        return f"got {got!r} ({type(got).__name__}), want a Line record"
    if not (isinstance(got.start, Point) and isinstance(got.end, Point)):
        return f"nested values are not Point records: {got!r}"
    return expect((got.start.x, got.start.y, got.end.x, got.end.y), (0, 0, 5, 6))


async def ask_in_trace(agent):
    """A request carrying the caller's traceparent: the Rust agent's event
    is in that trace, a child of the caller's span."""
    got = await agent.ask(value=1, headers={"traceparent": TRACEPARENT.encode()})
    _, trace_id, span_id, _ = TRACEPARENT.split("-")
    return expect(got, {"trace_id": trace_id, "parent_span_id": span_id})


async def ask_within_a_span(agent):
    """An ask made inside an OpenTelemetry span: the aiokafka instrumentation
    writes its traceparent on the request, and the Rust agent's event is in
    the caller's trace."""
    from opentelemetry import trace

    with trace.get_tracer("interop").start_as_current_span("py-client ask"):
        mine = current_span_ids()
        got = await agent.ask(value=2)
    return expect(got["trace_id"], mine["trace_id"])


async def map_double(agent):
    got = [v async for v in agent.map(range(10))]  # arrival order
    return expect(sorted(got), [2 * i for i in range(10)])


async def join_double(agent):
    return expect(await agent.join(range(10)), [2 * i for i in range(10)])


async def join_add(agent):
    got = await agent.join([Add(a=i, b=i) for i in range(5)])
    if not all(isinstance(t, Total) for t in got):
        return f"not all Total records: {got!r}"
    return expect([t.total for t in got], [2 * i for i in range(5)])


async def wait_seen(agent, want):
    """Ask the Rust `seen` agent until the Rust `collect` agent consumed
    everything in `want`."""
    while True:
        got = await agent.ask(value=None)
        if canonical(got) == canonical(want):
            return None
        await asyncio.sleep(0.2)


async def wait_adds(agent, want):
    """Ask the Rust `adds_seen` agent until the Rust `adds` agent read the
    records: `want` is [count, sum of a + b]."""
    while True:
        got = await agent.ask(value=None)
        if got == want:
            return None
        await asyncio.sleep(0.2)


async def main():
    checks = Checks("py-client")
    t0 = time.monotonic()
    await app.maybe_start_client()
    log("py-client", f"client started in {time.monotonic() - t0:.1f} s")
    collected = []
    for mode in MODES:
        a = {n: AGENTS[n, mode] for n in RUST_AGENTS}

        def run(what, coro, timeout=30.0):
            return checks.run(f"{mode}: {what}", coro, timeout)

        await run("ask double(21) == 42", ask_is(a["double"], 21, 42))
        await run("ask shout('héllo') == 'HÉLLO'", ask_is(a["shout"], "héllo", "HÉLLO"))
        await run("ask total([1, 2, 3]) == 6", ask_is(a["total"], [1, 2, 3], 6))
        await run(
            "ask keys(object)",
            ask_is(a["keys"], {"b": 1, "a": {"x": [1, None]}}, {"keys": ["a", "b"], "count": 2}),
        )
        await run("ask add(Add record) -> Total record", ask_record(a["add"]))
        await run(
            "several namespaces on one topic: Add -> Total record",
            ask_typed(a["shapes"], Add(a=1, b=2), Total, {"total": 3}),
        )
        await run(
            "nested records in: Line(Point, Point) -> Point record",
            ask_typed(a["shapes"], Line(start=Point(x=1, y=2), end=Point(x=4, y=6)), Point, {"x": 3, "y": 4}),
        )
        await run("nested records out: Point -> Line(Point, Point) record", ask_line(a["shapes"]))
        await run("ask in a W3C trace: the Rust event continues it", ask_in_trace(a["trace"]))
        await run(
            "ask inside an OpenTelemetry span: Faust and Rust share its trace id",
            ask_within_a_span(a["trace"]),
        )
        await run("map double over 10 values", map_double(a["double"]))
        await run("join double over 10 values (input order)", join_double(a["double"]))
        await run("join add over 5 records", join_add(a["add"]))
        # The Rust agent answers these three with an error reply; Faust
        # ignores the error header and returns the reply's null value.
        await run("agent error: Faust's ask gets None", ask_is(a["fail"], -1, None))
        await run("undecodable request: Faust's ask gets None", ask_is(a["double"], "x", None), 10)
        await run(
            "record of the wrong namespace: Faust's ask gets None",
            ask_is(a["add"], Point(x=1, y=2), None),
            10,
        )
        for n in range(3):
            value = {"via": "cast", "mode": mode, "n": n}
            await a["collect"].cast(value=value)
            collected.append(value)

    # A plain Faust producer: JSON values on the Rust agent's topic.
    plain = app.topic(topic_name("rs-collect"))
    for n in range(3):
        value = {"via": "topic.send", "n": n, "text": "plain"}
        await plain.send(value=value)
        collected.append(value)
    await checks.run(
        "Rust agent consumed every cast and plain JSON value",
        wait_seen(AGENTS["seen", "headers"], collected),
    )
    # A Faust producer on a topic declared with value_type: Add records.
    typed = app.topic(topic_name("rs-adds"), value_type=Add)
    for i in range(3):
        await typed.send(value=Add(a=i, b=10 * i))
    await checks.run(
        "Rust Record agent consumed the Add records of a value_type topic",
        wait_adds(AGENTS["adds_seen", "headers"], [3, 33]),
    )
    return checks.summary()


if __name__ == "__main__":
    code = asyncio.run(main())
    # Faust 0.15.3's app.stop() never returns for a client-only app (seen
    # here, with or without the Rust side). Everything sent was consumed (the
    # last check proves it), so leave without stopping.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
