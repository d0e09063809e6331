"""A Python Faust worker whose agents the Rust app calls.

Run by run.py; prints READY once its agents answer requests.
"""
import time

import faust

from common import PY_AGENT_TOPICS, Point, current_span_ids, make_app, setup_tracing, topic_name

T0 = time.monotonic()
# stream_wait_empty=False: on SIGTERM, do not wait for the reply-topic event
# of the READY self-check, which Faust's reply consumer never acks (20+ s).
app = make_app("py", stream_wait_empty=False)
setup_tracing(app)


def topic(name):
    assert name in PY_AGENT_TOPICS  # created by run.py before the worker starts
    return app.topic(topic_name(name))


@app.agent(topic("py-triple"))
async def triple(stream):
    async for value in stream:
        yield value * 3


@app.agent(topic("py-echo"))
async def echo(stream):
    """Tells which Python type the JSON value became."""
    async for value in stream:
        yield {"type": type(value).__name__, "value": value}


@app.agent(topic("py-scale"))
async def scale(stream):
    # The topic has no value_type: only the "__faust" namespace the Rust
    # struct carries can make the value a Point.
    async for p in stream:
        if isinstance(p, Point):
            yield Point(x=p.x * 2, y=p.y * 2)
        else:
            yield f"not an interop.Point: {p!r}"


@app.agent(topic("py-evens"))
async def evens(stream):
    """Answers even numbers only: an odd request never gets a reply."""
    async for n in stream:
        if n % 2 == 0:
            yield n


INBOX = []


@app.agent(topic("py-inbox"))
async def inbox(stream):
    """A plain consumer of what the Rust app sends to the topic."""
    async for value in stream:
        INBOX.append(value)


@app.agent(topic("py-seen"))
async def seen(stream):
    """Answers with everything `inbox` has consumed so far."""
    async for _ in stream:
        yield list(INBOX)


@app.agent(topic("py-trace"))
async def trace(stream):
    """Answers with the traceparent header of each request (None if none)."""
    async for event in stream.events():
        value = (event.headers or {}).get("traceparent")
        yield value.decode() if isinstance(value, bytes) else value


@app.agent(topic("py-otel"))
async def otel(stream):
    """Answers with the ids of the span Faust's OpenTelemetry sensor opened
    for the request."""
    async for _ in stream:
        yield current_span_ids()


@app.task
async def announce_ready():
    assert await triple.ask(value=1) == 3  # a round trip through Kafka
    print(f"READY after {time.monotonic() - T0:.1f} s", flush=True)


if __name__ == "__main__":
    faust.Worker(
        app, loglevel="warning", quiet=True, redirect_stdouts=False
    ).execute_from_commandline()
