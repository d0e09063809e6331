package faustbench;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerInterceptor;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.AppInfoParser;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;

/**
 * kafka-streams: {@code builder.stream(in).peek(first seen).mapValues(v -> v).to(out)}
 * with byte-array serdes, {@code num.stream.threads} = concurrency. The end of
 * the timed span is the n-th output acknowledged by the broker (a producer
 * interceptor counts the acks: Streams does not expose its producer's flush).
 * With exactly-once (kafka-streams-eos) the span ends when the input offsets
 * of n records are committed (so their outputs are visible to read_committed
 * consumers), polled through the Admin API.
 */
final class Streams {
    private Streams() {}

    /** Seconds the run may take before it gives up. */
    private static final long DEADLINE_SECS = 600;
    /** Seconds the commit of the n-th record may take after its ack. */
    private static final long COMMIT_DEADLINE_SECS = 60;

    private static final AtomicLong FIRST = new AtomicLong();
    private static final AtomicLong ACKED = new AtomicLong();
    private static final AtomicReference<Exception> SEND_FAILURE = new AtomicReference<>();
    private static volatile long target = Long.MAX_VALUE;
    private static final CountDownLatch ALL_ACKED = new CountDownLatch(1);
    private static volatile long ackedAt;

    /** Counts the Streams producer's acknowledgements (configured by class name). */
    public static final class AckCounter implements ProducerInterceptor<byte[], byte[]> {
        @Override
        public ProducerRecord<byte[], byte[]> onSend(ProducerRecord<byte[], byte[]> record) {
            return record;
        }

        @Override
        public void onAcknowledgement(RecordMetadata md, Exception e) {
            if (e != null) {
                SEND_FAILURE.compareAndSet(null, e);
            } else if (ACKED.incrementAndGet() == target) {
                ackedAt = System.nanoTime();
                ALL_ACKED.countDown();
            }
        }

        @Override
        public void close() {}

        @Override
        public void configure(Map<String, ?> configs) {}
    }

    static Line run(Args args, String impl, boolean eos) throws Exception {
        String bootstrap = args.str("kafka");
        String input = args.str("input-topic");
        long n = args.num("kafka-events", 1_000_000);
        int partitions = (int) args.num("partitions", 8);
        int concurrency = (int) args.num("concurrency", 1);
        String output = "bench-e2e-out-streams-" + Line.shortId();
        String appId = "bench-e2e-streams-" + Line.shortId();
        Topics.create(bootstrap, partitions, output);
        target = n;

        Path stateDir = Files.createTempDirectory("faust-bench-streams-");
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.ByteArraySerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.ByteArraySerde.class);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, concurrency);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG,
                eos ? StreamsConfig.EXACTLY_ONCE_V2 : StreamsConfig.AT_LEAST_ONCE);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        // As faust-kafka sets it for every consumer.
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG), "10");
        p.put(StreamsConfig.producerPrefix(ProducerConfig.INTERCEPTOR_CLASSES_CONFIG), AckCounter.class.getName());

        StreamsBuilder builder = new StreamsBuilder();
        builder.<byte[], byte[]>stream(input)
                .peek((k, v) -> {
                    if (FIRST.get() == 0) {
                        FIRST.compareAndSet(0, System.nanoTime());
                    }
                })
                .mapValues(v -> v)
                .to(output);

        AtomicReference<Throwable> crash = new AtomicReference<>();
        KafkaStreams streams = new KafkaStreams(builder.build(), p);
        streams.setUncaughtExceptionHandler(e -> {
            crash.compareAndSet(null, e);
            return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        long end;
        double ackedSecs;
        try {
            streams.start();
            long giveUp = System.nanoTime() + DEADLINE_SECS * 1_000_000_000L;
            while (!ALL_ACKED.await(100, TimeUnit.MILLISECONDS)) {
                check(crash);
                if (System.nanoTime() > giveUp) {
                    throw new IllegalStateException(
                            "only " + ACKED.get() + " of " + n + " outputs acknowledged in " + DEADLINE_SECS + " s");
                }
            }
            check(crash);
            ackedSecs = (ackedAt - FIRST.get()) / 1e9;
            end = eos ? committed(bootstrap, appId, input, n) : ackedAt;
            check(crash);
        } finally {
            streams.close(Duration.ofSeconds(30));
            streams.cleanUp();
            deleteTree(stateDir);
        }
        String timed = eos
                ? String.format("timed from the first record seen to the input offsets of %d records committed "
                        + "(their outputs committed with them; the last output was acknowledged after %.3f s)",
                        n, ackedSecs)
                : "timed from the first record seen to the last output acknowledged by the broker";
        return new Line("kafka-e2e", impl, concurrency, n)
                .timed(end - FIRST.get())
                .setup("Kafka Streams " + AppInfoParser.getVersion() + ": stream(in).peek().mapValues(v -> v).to(out), "
                        + "byte-array serdes, processing.guarantee=" + (eos ? "exactly_once_v2" : "at_least_once")
                        + ", num.stream.threads=" + concurrency + ", Streams' client defaults (producer linger.ms=100, "
                        + "commit.interval.ms " + (eos ? "100" : "30000") + ") but consumer "
                        + "fetch.max.wait.ms=10, fresh application.id; " + partitions + " partitions; " + timed
                        + "; " + Line.jvm());
    }

    private static void check(AtomicReference<Throwable> crash) {
        if (crash.get() != null) {
            throw new IllegalStateException("a stream thread died", crash.get());
        }
        if (SEND_FAILURE.get() != null) {
            throw new IllegalStateException("a send failed", SEND_FAILURE.get());
        }
    }

    /**
     * Poll the group's committed offsets on the input topic until they cover
     * {@code n} records (Kafka has no signal for a commit); the instant seen.
     */
    private static long committed(String bootstrap, String group, String topic, long n) throws Exception {
        try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap))) {
            var parts = admin.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS)
                    .get(topic).partitions().stream()
                    .map(i -> new TopicPartition(topic, i.partition()))
                    .toList();
            var starts = admin.listOffsets(parts.stream().collect(
                            java.util.stream.Collectors.toMap(tp -> tp, tp -> OffsetSpec.earliest())))
                    .all().get(30, TimeUnit.SECONDS);
            long base = starts.values().stream().mapToLong(o -> o.offset()).sum();
            long giveUp = System.nanoTime() + COMMIT_DEADLINE_SECS * 1_000_000_000L;
            long covered = 0;
            while (System.nanoTime() < giveUp) {
                Map<TopicPartition, OffsetAndMetadata> offs = admin.listConsumerGroupOffsets(group)
                        .partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
                long now = System.nanoTime();
                covered = offs.entrySet().stream()
                        .filter(e -> e.getKey().topic().equals(topic) && e.getValue() != null)
                        .mapToLong(e -> e.getValue().offset())
                        .sum() - base;
                if (covered >= n) {
                    return now;
                }
                Thread.sleep(5);
            }
            throw new IllegalStateException("committed offsets cover only " + covered + " of " + n
                    + " records " + COMMIT_DEADLINE_SECS + " s after the last ack");
        }
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> paths = Files.walk(dir)) {
            paths.sorted(Comparator.reverseOrder()).forEach(q -> q.toFile().delete());
        } catch (Exception e) {
            // A leftover temp dir is harmless.
        }
    }
}
