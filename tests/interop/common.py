"""Shared by the Python side of the interop tests: settings and records.

Every name is derived from INTEROP_PREFIX (set by run.py, unique per run), so
runs never see each other's messages. The Rust side (examples/interop.rs)
uses the same names.
"""
import asyncio
import os
import sys
import time

import faust

BROKER = os.environ.get("INTEROP_BROKER", "kafka://127.0.0.1:9092")
PREFIX = os.environ.get("INTEROP_PREFIX", "interop-manual-")


def topic_name(name):
    return PREFIX + name


# Topics of the Python worker's agents. run.py creates them before the worker
# starts: Faust does not create an agent's source topic, and with
# `internal=True` it may subscribe before the new topic shows in the metadata
# and then ignore it for good ("Ignoring missing topic").
PY_AGENT_TOPICS = [
    "py-triple", "py-echo", "py-scale", "py-evens", "py-inbox", "py-seen", "py-trace",
    "py-otel",
]
# A W3C traceparent, as OpenTelemetry's Kafka instrumentations (and Faust's
# OpenTelemetry support) write it on the records of a traced producer.
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
PY_AGENT_PARTITIONS = 4


async def create_topics(names, partitions):
    """Create topics (existing ones are fine) and wait until they are listed."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=BROKER.split("://", 1)[-1])
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
        while set(names) - set(await admin.list_topics()):
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


def setup_tracing(app):
    """Faust's own OpenTelemetry support, as a traced Faust service sets it
    up: an SDK tracer provider (ids only, nothing exported), the aiokafka
    instrumentation (writes `traceparent` on every record produced) and
    Faust's sensor (a span per event, under the record's `traceparent`)."""
    from faust.contrib.opentelemetry import setup_opentelemetry
    from opentelemetry import trace
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider())
    AIOKafkaInstrumentor().instrument()
    setup_opentelemetry(app)


def current_span_ids():
    """The current OpenTelemetry span's trace id and span id, in hex, and
    its parent's span id (None for a root)."""
    from opentelemetry import trace

    span = trace.get_current_span()
    ctx = span.get_span_context()
    parent = getattr(span, "parent", None)
    return {
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "parent_span_id": format(parent.span_id, "016x") if parent else None,
    }


def make_app(role, **kwargs):
    """A Faust app for this run. `reply_create_topic=True` is needed by any
    Faust process that calls `ask`/`map`/`join`."""
    return faust.App(
        PREFIX + role,
        broker=BROKER,
        store="memory://",
        web_enabled=False,
        reply_create_topic=True,
        reply_to_prefix=PREFIX + "reply-",
        **kwargs,
    )


# Faust records. The namespace is what goes on the wire in
# "__faust": {"ns": ...}; the Rust structs name the same namespaces.
class Add(faust.Record, namespace="interop.Add"):
    a: int
    b: int


class Total(faust.Record, namespace="interop.Total"):
    total: int


class Point(faust.Record, namespace="interop.Point"):
    x: int
    y: int


class Line(faust.Record, namespace="interop.Line"):
    """Records nested in a record."""

    start: Point
    end: Point


class Checks:
    """Collects named checks; prints `ok`/`FAIL` lines with timings."""

    def __init__(self, side):
        self.side = side
        self.failures = []
        self.count = 0

    async def run(self, name, coro, timeout=30.0):
        """Await `coro` (bounded by `timeout`); it returns None on success or
        a string describing the failure."""
        self.count += 1
        t0 = time.monotonic()
        try:
            problem = await asyncio.wait_for(coro, timeout)
        except asyncio.TimeoutError:
            problem = f"no answer within {timeout:.0f} s"
        except Exception as exc:  # report every failure, go on with the rest
            problem = f"{type(exc).__name__}: {exc}"
        ms = (time.monotonic() - t0) * 1000
        if problem is None:
            print(f"[{self.side}] ok   {name} ({ms:.0f} ms)", flush=True)
        else:
            print(f"[{self.side}] FAIL {name} ({ms:.0f} ms): {problem}", flush=True)
            self.failures.append(name)

    def summary(self):
        passed = self.count - len(self.failures)
        print(f"[{self.side}] {passed}/{self.count} checks passed", flush=True)
        return 1 if self.failures else 0


def expect(got, want):
    """None when equal, else a description (for Checks.run)."""
    return None if got == want else f"got {got!r}, want {want!r}"


def log(side, msg):
    print(f"[{side}] {msg}", file=sys.stderr, flush=True)
