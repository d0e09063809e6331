package faustbench;

import java.time.Duration;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.utils.AppInfoParser;

/**
 * java-relay: the plain kafka-clients relay, the JVM's rdkafka-raw. One loop
 * polls a {@link KafkaConsumer} and sends each value, as is, with a
 * {@link KafkaProducer}; async commit every second and at the end. Timed from
 * the first record polled to the last value sent and the producer flushed.
 */
final class Relay {
    private Relay() {}

    /** Seconds the relay may take before it gives up. */
    private static final long DEADLINE_SECS = 600;

    static Object defaultOf(String producerSetting) {
        return ProducerConfig.configDef().defaultValues().get(producerSetting);
    }

    static Line run(Args args, String impl, boolean tuned) throws Exception {
        String bootstrap = args.str("kafka");
        String input = args.str("input-topic");
        long n = args.num("kafka-events", 1_000_000);
        int partitions = (int) args.num("partitions", 8);
        int concurrency = (int) args.num("concurrency", 1);
        String output = "bench-e2e-out-java-" + Line.shortId();
        Topics.create(bootstrap, partitions, output);

        Properties cc = new Properties();
        cc.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cc.put(ConsumerConfig.GROUP_ID_CONFIG, "bench-e2e-java-" + Line.shortId());
        cc.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cc.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        // As faust-kafka sets it for every consumer.
        cc.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "10");
        Properties pc = new Properties();
        pc.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        if (tuned) {
            pc.put(ProducerConfig.LINGER_MS_CONFIG, "5");
            pc.put(ProducerConfig.BATCH_SIZE_CONFIG, "262144");
        }

        AtomicLong delivered = new AtomicLong();
        AtomicReference<Exception> failure = new AtomicReference<>();
        long first = 0;
        long end;
        long seen = 0;
        try (KafkaConsumer<byte[], byte[]> consumer =
                        new KafkaConsumer<>(cc, new ByteArrayDeserializer(), new ByteArrayDeserializer());
                KafkaProducer<byte[], byte[]> producer =
                        new KafkaProducer<>(pc, new ByteArraySerializer(), new ByteArraySerializer())) {
            consumer.subscribe(List.of(input));
            long giveUp = System.nanoTime() + DEADLINE_SECS * 1_000_000_000L;
            long lastCommit = System.nanoTime();
            while (seen < n) {
                if (System.nanoTime() > giveUp) {
                    throw new IllegalStateException(
                            "only " + seen + " of " + n + " records consumed in " + DEADLINE_SECS + " s");
                }
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(100))) {
                    if (first == 0) {
                        first = System.nanoTime();
                    }
                    producer.send(new ProducerRecord<>(output, r.value()), (md, e) -> {
                        if (e == null) {
                            delivered.incrementAndGet();
                        } else {
                            failure.compareAndSet(null, e);
                        }
                    });
                    if (++seen == n) {
                        break;
                    }
                }
                if (System.nanoTime() - lastCommit >= 1_000_000_000L) {
                    consumer.commitAsync();
                    lastCommit = System.nanoTime();
                }
            }
            producer.flush();
            end = System.nanoTime();
            consumer.commitAsync();
        }
        if (failure.get() != null) {
            throw new IllegalStateException("a send failed", failure.get());
        }
        if (delivered.get() != n) {
            throw new IllegalStateException(delivered.get() + " of " + n + " records delivered");
        }
        String producerSettings = tuned
                ? "linger.ms=5, batch.size=262144"
                : "linger.ms=" + defaultOf(ProducerConfig.LINGER_MS_CONFIG) + ", batch.size="
                        + defaultOf(ProducerConfig.BATCH_SIZE_CONFIG) + " (the client's defaults)";
        return new Line("kafka-e2e", impl, concurrency, n)
                .timed(end - first)
                .setup("one loop: KafkaConsumer.poll -> KafkaProducer.send of the value bytes (no decoding), async "
                        + "commit every second; the same loop at every --concurrency; producer: " + producerSettings
                        + ", acks=all and idempotence on (the client's defaults); consumer: fetch.max.wait.ms=10, no "
                        + "auto commit; " + partitions + " partitions; timed from the first record polled to the "
                        + "last value sent and the producer flushed; kafka-clients " + AppInfoParser.getVersion()
                        + ", " + Line.jvm());
    }
}
