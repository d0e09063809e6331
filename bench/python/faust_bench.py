"""Python Faust (faust-streaming 0.15.x) peers of the faust-bench workloads.

Run by ``faust-bench`` (``--python``); prints one JSON line in the schema of
``docs/benchmarks.md`` on stdout, logs on stderr. Standalone use:

    python bench/python/faust_bench.py --workload mem-throughput --python-events 200000 --concurrency 4

Workloads:

mem-throughput
    An agent (``concurrency`` actors) on an in-memory ``app.channel()``; one
    coroutine awaits ``channel.send(value=i)`` for ``0..n``; the agent counts.
    Timed from the first send to the last event counted. This is the fastest
    honest in-memory path Faust has (no memory:// broker exists): it encodes
    and decodes each value like a topic would, and ``agent.test_context()``
    with ``put(wait=False)`` measured slower (it also records every result).
kafka-e2e
    An agent reads the preloaded input topic and yields each value to a topic
    sink, then a callback sink counts. Timed from the first event seen to the
    last value counted and the producer flushed.
kafka-ask / kafka-join
    An agent answering ``x + 1``; sequential ``agent.ask`` (after warm-up), or
    one ``agent.join`` of ``n`` values.
"""

import argparse
import asyncio
import json
import logging
import os
import sys
import time
import traceback
import uuid

import faust


def peak_rss_mb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    return None


def percentile(sorted_samples, p):
    """Nearest-rank percentile, as faust-bench computes it."""
    if not sorted_samples:
        return None
    rank = -(-p * len(sorted_samples) // 100)  # ceil
    rank = int(min(max(rank, 1), len(sorted_samples)))
    return sorted_samples[rank - 1]


def measurement(workload, concurrency, events, seconds=None, latencies=None, setup=None):
    m = {
        "workload": workload,
        "impl": "python-faust",
        "status": "ok",
        "reason": None,
        "concurrency": concurrency,
        "events": events,
        "seconds": round(seconds, 6) if seconds is not None else None,
        "events_per_sec": round(events / seconds, 1) if seconds else None,
        "p50_us": None,
        "p99_us": None,
        "peak_rss_mb": None,
        "ratio_vs": {},
        "targets": [],
        "setup": setup,
    }
    if latencies:
        s = sorted(latencies)
        m["p50_us"] = round(percentile(s, 50) * 1e6, 1)
        m["p99_us"] = round(percentile(s, 99) * 1e6, 1)
    return m


def versions():
    return "faust-streaming %s, Python %s, asyncio %s loop" % (
        faust.__version__,
        ".".join(map(str, sys.version_info[:3])),
        type(asyncio.get_event_loop_policy()).__name__,
    )


def short_id():
    return uuid.uuid4().hex[:8]


# ----- in-memory ----------------------------------------------------------


async def mem_throughput(args):
    n, conc = args.python_events, args.concurrency
    app = faust.App("bench-mem-" + short_id(), store="memory://", web_enabled=False)
    channel = app.channel(value_type=int)
    done = asyncio.Event()
    state = {"count": 0, "sum": 0}

    @app.agent(channel, concurrency=conc)
    async def count(stream):
        async for value in stream:
            state["sum"] += value
            state["count"] += 1
            if state["count"] == n:
                done.set()

    # test_context() does the same: channel queues start paused.
    app.flow_control.resume()
    await count.start()
    t0 = time.perf_counter()
    for i in range(n):
        await channel.send(value=i)
    await done.wait()
    seconds = time.perf_counter() - t0
    await count.stop()
    assert state["count"] == n and state["sum"] == n * (n - 1) // 2, state
    return measurement(
        "mem-throughput",
        conc,
        n,
        seconds,
        setup="agent on app.channel(value_type=int), one coroutine awaiting channel.send(value=i); "
        + versions(),
    )


# ----- Kafka --------------------------------------------------------------


def kafka_app(args, prefix):
    return faust.App(
        "%s-%s" % (prefix, short_id()),
        broker="kafka://" + args.kafka,
        store="memory://",
        web_enabled=False,
        topic_partitions=args.partitions,
        consumer_auto_offset_reset="earliest",
        producer_linger_ms=1,
        # Subscribe to the reply topic at start: otherwise the first ask
        # waits for the conductor's 45 s re-subscription lock.
        reply_create_topic=True,
    )


async def run_app(app, body):
    """Start the app without a Worker and run ``body()``.

    The app is not stopped: faust-streaming's graceful stop can wait forever
    for the reply consumer's last message to be acked (``wait_empty``), and
    the process ends right after the measurement line anyway.
    """
    await app.start()
    return await body()


async def kafka_e2e(args):
    n, conc = args.python_kafka_events, args.concurrency
    if not args.input_topic:
        raise SystemExit("kafka-e2e needs --input-topic")
    app = kafka_app(args, "bench-e2e-py")
    source = app.topic(args.input_topic, value_serializer="json")
    sink_topic = app.topic("bench-e2e-out-py-" + short_id(), value_serializer="json", internal=True,
                           partitions=args.partitions)
    done = asyncio.Event()
    state = {"count": 0, "first": None}

    def counted(value):
        state["count"] += 1
        if state["count"] == n:
            done.set()

    @app.agent(source, sink=[sink_topic, counted], concurrency=conc)
    async def relay(stream):
        async for value in stream:
            if state["first"] is None:
                state["first"] = time.perf_counter()
            yield value

    async def body():
        await sink_topic.maybe_declare()
        await asyncio.wait_for(done.wait(), timeout=args.deadline)
        await app.producer.flush()
        return time.perf_counter() - state["first"]

    seconds = await run_app(app, body)
    return measurement(
        "kafka-e2e",
        conc,
        n,
        seconds,
        setup="agent yielding each ~100-byte JSON value to a topic sink, then a counting callback sink; "
        "started with app.start() (no Worker); timed from the first event to the last value counted and "
        "the producer flushed; " + versions(),
    )


def echo_agent(app, args, prefix):
    topic = app.topic("%s-%s" % (prefix, short_id()), value_type=int, partitions=args.partitions,
                      internal=True)

    @app.agent(topic)
    async def echo(stream):
        async for x in stream:
            yield x + 1

    return echo


async def kafka_ask(args):
    n, warmup = args.python_asks, max(args.warmup, 1)
    app = kafka_app(args, "bench-ask-py")
    echo = echo_agent(app, args, "bench-ask-py")

    async def ask(i):
        # Faust's ask has no deadline: a lost reply would hang the run.
        try:
            return await asyncio.wait_for(echo.ask(value=i), timeout=args.ask_timeout)
        except asyncio.TimeoutError:
            raise RuntimeError("ask #%d got no reply within %.0f s" % (i, args.ask_timeout)) from None

    async def body():
        for i in range(warmup):
            r = await ask(i)
            assert r == i + 1, (i, r)
        samples = []
        t0 = time.perf_counter()
        for i in range(n):
            t = time.perf_counter()
            r = await ask(i)
            samples.append(time.perf_counter() - t)
            assert r == i + 1, (i, r)
        return time.perf_counter() - t0, samples

    seconds, samples = await run_app(app, body)
    return measurement(
        "kafka-ask",
        1,
        n,
        seconds,
        latencies=samples,
        setup="agent yielding x + 1 on kafka://%s, sequential agent.ask after %d warm-up asks; %s"
        % (args.kafka, warmup, versions()),
    )


async def kafka_join(args):
    n = args.python_join
    app = kafka_app(args, "bench-join-py")
    echo = echo_agent(app, args, "bench-join-py")

    async def body():
        assert await echo.ask(value=0) == 1
        t0 = time.perf_counter()
        out = await echo.join(list(range(n)))
        seconds = time.perf_counter() - t0
        assert out == [i + 1 for i in range(n)], "join result out of order or wrong"
        return seconds

    seconds = await run_app(app, body)
    return measurement(
        "kafka-join",
        1,
        n,
        seconds,
        setup="agent yielding x + 1 on kafka://%s, one agent.join of %d values after one warm-up ask; %s"
        % (args.kafka, n, versions()),
    )


WORKLOADS = {
    "mem-throughput": mem_throughput,
    "kafka-e2e": kafka_e2e,
    "kafka-ask": kafka_ask,
    "kafka-join": kafka_join,
}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", required=True, choices=sorted(WORKLOADS))
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--python-events", type=int, default=200_000)
    p.add_argument("--python-kafka-events", type=int, default=100_000)
    p.add_argument("--python-asks", type=int, default=10_000)
    p.add_argument("--python-join", type=int, default=1_000,
                   help="values to join (Faust's barrier overflows beyond 1000)")
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--kafka", default="127.0.0.1:9092")
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--input-topic")
    p.add_argument("--ask-timeout", type=float, default=30.0,
                   help="seconds one ask may wait for its reply")
    p.add_argument("--deadline", type=float, default=1800.0,
                   help="seconds to wait for the last event")
    # Accepted for symmetry with faust-bench's children; unused here.
    for flag in ("--events", "--io-events", "--kafka-events", "--asks", "--join"):
        p.add_argument(flag, type=int)
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args()

    logging.basicConfig(
        level=os.environ.get("FAUST_BENCH_LOG", "WARNING"),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    async def measure_and_exit():
        # Print and leave from inside the loop: asyncio.run's clean-up
        # (cancelling faust's services, joining aiokafka's consumer thread)
        # can hang after a measurement, and the app is never stopped here.
        try:
            m = await WORKLOADS[args.workload](args)
            m["peak_rss_mb"] = peak_rss_mb()
            sys.stdout.write(json.dumps(m) + "\n")
            sys.stdout.flush()
            code = 0
        except BaseException:  # noqa: BLE001 - report, then exit
            traceback.print_exc()
            code = 1
        sys.stderr.flush()
        os._exit(code)

    asyncio.run(measure_and_exit())


if __name__ == "__main__":
    main()
