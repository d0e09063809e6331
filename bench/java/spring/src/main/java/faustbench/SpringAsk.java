package faustbench;

import java.io.InputStream;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.LongSerializer;
import org.apache.kafka.common.utils.AppInfoParser;
import org.springframework.context.annotation.AnnotationConfigApplicationContext;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.core.env.Environment;
import org.springframework.core.env.MapPropertySource;
import org.springframework.kafka.annotation.EnableKafka;
import org.springframework.kafka.annotation.KafkaListener;
import org.springframework.kafka.config.ConcurrentKafkaListenerContainerFactory;
import org.springframework.kafka.core.ConsumerFactory;
import org.springframework.kafka.core.DefaultKafkaConsumerFactory;
import org.springframework.kafka.core.DefaultKafkaProducerFactory;
import org.springframework.kafka.core.KafkaTemplate;
import org.springframework.kafka.listener.ConcurrentMessageListenerContainer;
import org.springframework.kafka.requestreply.ReplyingKafkaTemplate;
import org.springframework.messaging.handler.annotation.SendTo;

/**
 * spring-ask: sequential {@link ReplyingKafkaTemplate#sendAndReceive} against a
 * {@code @KafkaListener} with {@code @SendTo} answering {@code x + 1}, in one
 * plain Spring context (no Boot). Long serdes; client and server each have
 * their own producer; Spring Kafka's container defaults otherwise.
 * {@code spring-ask-linger0} sets {@code linger.ms=0} on both producers.
 *
 * <pre>
 * java -jar faust-bench-spring.jar --workload kafka-ask --impl spring-ask \
 *     --kafka 127.0.0.1:9092 --asks 10000 --warmup 100
 * </pre>
 */
public final class SpringAsk {
    private SpringAsk() {}

    /** Seconds one ask may wait for its reply. */
    private static final long ASK_TIMEOUT_SECS = 30;

    public static void main(String[] argv) {
        Line.main(argv, SpringAsk::run);
    }

    static Line run(Args args) throws Exception {
        String workload = args.str("workload");
        String impl = args.str("impl");
        if (!workload.equals("kafka-ask") || !(impl.equals("spring-ask") || impl.equals("spring-ask-linger0"))) {
            throw new IllegalArgumentException("no JVM measurement `" + impl + "` for workload `" + workload + "`");
        }
        boolean linger0 = impl.equals("spring-ask-linger0");
        String bootstrap = args.str("kafka");
        long n = args.num("asks", 10_000);
        long warmup = Math.max(args.num("warmup", 100), 1);
        int partitions = (int) args.num("partitions", 8);
        String id = Line.shortId();
        String requests = "bench-ask-spring-" + id;
        String replies = requests + "-replies";
        Topics.create(bootstrap, partitions, requests, replies);

        Map<String, Object> props = new HashMap<>();
        props.put("bench.kafka", bootstrap);
        props.put("bench.requests", requests);
        props.put("bench.replies", replies);
        props.put("bench.group", "bench-ask-spring-" + id);
        props.put("bench.linger0", Boolean.toString(linger0));
        long[] samples = new long[(int) n];
        long took;
        try (AnnotationConfigApplicationContext ctx = new AnnotationConfigApplicationContext()) {
            ctx.getEnvironment().getPropertySources().addFirst(new MapPropertySource("bench", props));
            ctx.register(Config.class);
            ctx.refresh();
            @SuppressWarnings("unchecked")
            ReplyingKafkaTemplate<Long, Long, Long> client = ctx.getBean(ReplyingKafkaTemplate.class);
            if (!client.waitForAssignment(Duration.ofSeconds(30))) {
                throw new IllegalStateException("the reply container got no partitions in 30 s");
            }
            for (long i = 0; i < warmup; i++) {
                ask(client, requests, i);
            }
            long start = System.nanoTime();
            for (int i = 0; i < n; i++) {
                long t = System.nanoTime();
                ask(client, requests, i);
                samples[i] = System.nanoTime() - t;
            }
            took = System.nanoTime() - start;
        }
        return new Line("kafka-ask", impl, 1, n)
                .timed(took)
                .latencies(samples)
                .setup("Spring Kafka " + springKafkaVersion() + " on kafka-clients " + AppInfoParser.getVersion()
                        + " (what it requires): ReplyingKafkaTemplate.sendAndReceive against a @KafkaListener "
                        + "@SendTo answering x + 1, plain Spring context, Long serdes, " + partitions
                        + "-partition request and reply topics; "
                        + (linger0
                                ? "linger.ms=0 on both producers"
                                : "the client's default linger.ms ("
                                        + ProducerConfig.configDef().defaultValues().get(ProducerConfig.LINGER_MS_CONFIG)
                                        + ")")
                        + ", consumers fetch.max.wait.ms=10, container defaults otherwise; sequential asks after "
                        + warmup + " warm-up asks; " + Line.jvm());
    }

    private static void ask(ReplyingKafkaTemplate<Long, Long, Long> client, String topic, long x) throws Exception {
        long got = client.sendAndReceive(new ProducerRecord<>(topic, x))
                .get(ASK_TIMEOUT_SECS, TimeUnit.SECONDS)
                .value();
        if (got != x + 1) {
            throw new IllegalStateException("ask(" + x + ") answered " + got);
        }
    }

    private static String springKafkaVersion() {
        try (InputStream in = SpringAsk.class.getResourceAsStream("/faust-bench-spring.properties")) {
            Properties p = new Properties();
            p.load(in);
            return p.getProperty("spring-kafka.version", "?");
        } catch (Exception e) {
            return "?";
        }
    }

    /** The replying listener. */
    public static class Echo {
        @KafkaListener(id = "echo", topics = "${bench.requests}", groupId = "${bench.group}-server")
        @SendTo
        public long echo(long x) {
            return x + 1;
        }
    }

    @Configuration(proxyBeanMethods = false)
    @EnableKafka
    public static class Config {
        private static DefaultKafkaProducerFactory<Long, Long> producers(Environment env) {
            Map<String, Object> p = new HashMap<>();
            p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, env.getRequiredProperty("bench.kafka"));
            p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, LongSerializer.class);
            p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, LongSerializer.class);
            if (env.getRequiredProperty("bench.linger0", Boolean.class)) {
                p.put(ProducerConfig.LINGER_MS_CONFIG, 0);
            }
            return new DefaultKafkaProducerFactory<>(p);
        }

        @Bean
        public ConsumerFactory<Long, Long> consumerFactory(Environment env) {
            Map<String, Object> p = new HashMap<>();
            p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, env.getRequiredProperty("bench.kafka"));
            p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, LongDeserializer.class);
            p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, LongDeserializer.class);
            p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            // As faust-kafka sets it for every consumer.
            p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 10);
            return new DefaultKafkaConsumerFactory<>(p);
        }

        /** The server side: @KafkaListener containers, replying with their own producer. */
        @Bean
        public ConcurrentKafkaListenerContainerFactory<Long, Long> kafkaListenerContainerFactory(
                ConsumerFactory<Long, Long> consumers, Environment env) {
            ConcurrentKafkaListenerContainerFactory<Long, Long> f = new ConcurrentKafkaListenerContainerFactory<>();
            f.setConsumerFactory(consumers);
            f.setReplyTemplate(new KafkaTemplate<>(producers(env)));
            return f;
        }

        @Bean
        public ConcurrentMessageListenerContainer<Long, Long> repliesContainer(
                ConcurrentKafkaListenerContainerFactory<Long, Long> factory, Environment env) {
            ConcurrentMessageListenerContainer<Long, Long> c =
                    factory.createContainer(env.getRequiredProperty("bench.replies"));
            c.getContainerProperties().setGroupId(env.getRequiredProperty("bench.group") + "-client");
            // Started by the template.
            c.setAutoStartup(false);
            return c;
        }

        /** The client side, with its own producer. */
        @Bean
        public ReplyingKafkaTemplate<Long, Long, Long> replyingTemplate(
                ConcurrentMessageListenerContainer<Long, Long> repliesContainer, Environment env) {
            ReplyingKafkaTemplate<Long, Long, Long> t = new ReplyingKafkaTemplate<>(producers(env), repliesContainer);
            t.setDefaultReplyTimeout(Duration.ofSeconds(ASK_TIMEOUT_SECS));
            return t;
        }

        @Bean
        public Echo echo() {
            return new Echo();
        }
    }
}
