package faustbench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.UUID;

/**
 * One measurement line in faust-bench's schema (docs/benchmarks.md, "Output
 * schema"): every key present, {@code null} where it does not apply.
 */
public final class Line {
    private final String workload;
    private final String impl;
    private final int concurrency;
    private final long events;
    private Double seconds;
    private Double p50Us;
    private Double p99Us;
    private String setup;

    public Line(String workload, String impl, int concurrency, long events) {
        this.workload = workload;
        this.impl = impl;
        this.concurrency = concurrency;
        this.events = events;
    }

    /** The timed span, in nanoseconds. */
    public Line timed(long nanos) {
        seconds = round(nanos / 1e9, 6);
        return this;
    }

    /** Round trips in nanoseconds: p50 and p99 by nearest rank, as faust-bench computes them. */
    public Line latencies(long[] nanos) {
        long[] s = nanos.clone();
        Arrays.sort(s);
        if (s.length > 0) {
            p50Us = round(percentile(s, 50.0) / 1e3, 1);
            p99Us = round(percentile(s, 99.0) / 1e3, 1);
        }
        return this;
    }

    public Line setup(String setup) {
        this.setup = setup;
        return this;
    }

    static long percentile(long[] sorted, double p) {
        int rank = (int) Math.ceil(p / 100.0 * sorted.length);
        return sorted[Math.min(Math.max(rank, 1), sorted.length) - 1];
    }

    static double round(double x, int digits) {
        double f = Math.pow(10, digits);
        return Math.round(x * f) / f;
    }

    /** Peak RSS of this JVM ({@code VmHWM}), in MiB; null off Linux. */
    static Double peakRssMb() {
        try {
            for (String l : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (l.startsWith("VmHWM:")) {
                    return round(Long.parseLong(l.split("\\s+")[1]) / 1024.0, 1);
                }
            }
        } catch (IOException | RuntimeException e) {
            // Not Linux: no peak.
        }
        return null;
    }

    public String toJson() {
        Double eps = seconds != null && seconds > 0 ? round(events / seconds, 1) : null;
        return "{\"workload\":" + quote(workload)
                + ",\"impl\":" + quote(impl)
                + ",\"status\":\"ok\",\"reason\":null"
                + ",\"concurrency\":" + concurrency
                + ",\"events\":" + events
                + ",\"seconds\":" + num(seconds)
                + ",\"events_per_sec\":" + num(eps)
                + ",\"p50_us\":" + num(p50Us)
                + ",\"p99_us\":" + num(p99Us)
                + ",\"peak_rss_mb\":" + num(peakRssMb())
                + ",\"ratio_vs\":{},\"targets\":[]"
                + ",\"setup\":" + quote(setup)
                + "}";
    }

    private static String num(Double x) {
        return x == null ? "null" : String.format(Locale.ROOT, "%s", x);
    }

    private static String quote(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }

    /** What a peer's main runs: the measurement, from the parsed flags. */
    @FunctionalInterface
    public interface Body {
        Line measure(Args args) throws Exception;
    }

    /**
     * Run one measurement and exit: its line on stdout and status 0, or the
     * stack trace on stderr and status 1. Exits without waiting for client
     * threads still winding down; the process ends right after anyway.
     */
    public static void main(String[] argv, Body body) {
        int code;
        try {
            String json = body.measure(new Args(argv)).toJson();
            System.out.println(json);
            System.out.flush();
            code = 0;
        } catch (Throwable t) {
            t.printStackTrace();
            // Last, for faust-bench's failure reason (it keeps the tail of stderr).
            StringBuilder why = new StringBuilder("error: ").append(t);
            for (Throwable c = t.getCause(); c != null && c != c.getCause(); c = c.getCause()) {
                why.append(": ").append(c);
            }
            System.err.println(why);
            code = 1;
        }
        System.err.flush();
        Runtime.getRuntime().halt(code);
    }

    /** Eight hex digits for fresh topic, group and application ids. */
    public static String shortId() {
        return UUID.randomUUID().toString().replace("-", "").substring(0, 8);
    }

    /** The Java runtime, for the {@code setup} field. */
    public static String jvm() {
        return "Java " + System.getProperty("java.version") + " (" + System.getProperty("java.vm.name") + ")";
    }
}
