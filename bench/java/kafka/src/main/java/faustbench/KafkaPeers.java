package faustbench;

/**
 * The kafka-e2e peers on kafka-clients and Kafka Streams: one measurement per
 * process, named by {@code --impl}.
 *
 * <pre>
 * java -jar faust-bench-kafka.jar --workload kafka-e2e --impl java-relay \
 *     --kafka 127.0.0.1:9092 --input-topic bench-e2e-in-... --kafka-events 100000 --concurrency 1
 * </pre>
 */
public final class KafkaPeers {
    private KafkaPeers() {}

    public static void main(String[] argv) {
        Line.main(argv, args -> {
            String workload = args.str("workload");
            String impl = args.str("impl");
            if (!workload.equals("kafka-e2e")) {
                throw new IllegalArgumentException("no JVM measurement `" + impl + "` for workload `" + workload + "`");
            }
            return switch (impl) {
                case "java-relay" -> Relay.run(args, impl, false);
                case "java-relay-tuned" -> Relay.run(args, impl, true);
                case "kafka-streams" -> Streams.run(args, impl, false);
                case "kafka-streams-eos" -> Streams.run(args, impl, true);
                default -> throw new IllegalArgumentException(
                        "no JVM measurement `" + impl + "` for workload `" + workload + "`");
            };
        });
    }
}
