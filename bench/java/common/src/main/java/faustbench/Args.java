package faustbench;

import java.util.HashMap;
import java.util.Map;

/**
 * The flags faust-bench passes its peers: {@code --name value} pairs and bare
 * {@code --flag} switches. Flags a peer does not use are accepted and ignored,
 * as the Python peer does.
 */
public final class Args {
    private final Map<String, String> values = new HashMap<>();

    public Args(String[] argv) {
        for (int i = 0; i < argv.length; i++) {
            String a = argv[i];
            if (!a.startsWith("--")) {
                throw new IllegalArgumentException("unexpected argument `" + a + "`");
            }
            String name = a.substring(2);
            int eq = name.indexOf('=');
            if (eq >= 0) {
                values.put(name.substring(0, eq), name.substring(eq + 1));
            } else if (i + 1 < argv.length && !argv[i + 1].startsWith("--")) {
                values.put(name, argv[++i]);
            } else {
                values.put(name, "true");
            }
        }
    }

    /** A flag's value, or an error naming it. */
    public String str(String name) {
        String v = values.get(name);
        if (v == null) {
            throw new IllegalArgumentException("missing --" + name);
        }
        return v;
    }

    public String str(String name, String fallback) {
        return values.getOrDefault(name, fallback);
    }

    public long num(String name, long fallback) {
        String v = values.get(name);
        if (v == null) {
            return fallback;
        }
        try {
            return Long.parseLong(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--" + name + " wants a number, got `" + v + "`");
        }
    }
}
