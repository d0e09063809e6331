//! Secrets out of printed broker URLs: everything that logs, displays or
//! formats a broker URL or a client property goes through [`redact_url`] or
//! [`is_secret_property`].

/// What a secret is replaced with.
pub const REDACTED: &str = "***";

/// Whether a client property holds a secret: `sasl.password`,
/// `ssl.key.password`, `ssl.keystore.password`, `ssl.truststore.password`,
/// `sasl.oauthbearer.client.secret`, `ssl.key.pem`, `sasl.jaas.config`,
/// `sasl.oauthbearer.config`, and any name containing `password`, `secret`
/// or `jaas`; with or without a `producer.`, `consumer.` or `admin.` prefix,
/// in any case.
pub fn is_secret_property(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    let name = ["producer.", "consumer.", "admin."]
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(&name);
    matches!(name, "ssl.key.pem" | "ssl_key" | "sasl.oauthbearer.config")
        || ["password", "secret", "jaas"]
            .iter()
            .any(|w| name.contains(w))
}

/// The URL with every secret replaced by `***`: the userinfo of each host
/// (`kafka://user:pass@host` → `kafka://***@host`) and the value of every
/// query parameter [`is_secret_property`] names (the name may be
/// percent-encoded). Anything else, including text that is not a URL, is
/// returned as it is.
///
/// ```
/// # use faust_core as faust;
/// use faust::redact::redact_url;
/// assert_eq!(
///     redact_url("kafka://a:9092?sasl.username=app&sasl.password=p%40ss&linger.ms=5"),
///     "kafka://a:9092?sasl.username=app&sasl.password=***&linger.ms=5"
/// );
/// assert_eq!(redact_url("kafka://app:pass@a:9092"), "kafka://***@a:9092");
/// ```
pub fn redact_url(url: &str) -> String {
    let (hosts, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    // A password with a `?` in it: `kafka://user:pa?ss@host`.
    if let Some(first) = query.and_then(|q| q.split(['&', '?']).next()) {
        if !hosts.contains('@') && !first.contains('=') && first.contains('@') {
            let at = hosts.len() + 1 + first.rfind('@').unwrap_or(0);
            let start = url.find("://").map_or(0, |i| i + 3);
            return redact_url(&format!("{}{REDACTED}{}", &url[..start], &url[at..]));
        }
    }
    let mut out = String::with_capacity(url.len());
    // Hosts are separated by `,` or `;`, each may repeat the scheme.
    let mut rest = hosts;
    while !rest.is_empty() {
        let end = rest.find([',', ';']).unwrap_or(rest.len());
        let (host, tail) = rest.split_at(end);
        out.push_str(&redact_userinfo(host));
        if let Some(sep) = tail.chars().next() {
            out.push(sep);
            rest = &tail[sep.len_utf8()..];
        } else {
            rest = "";
        }
    }
    if let Some(query) = query {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((key, _)) if is_secret_property(&percent_decode_lossy(key)) => {
                    out.push_str(key);
                    out.push('=');
                    out.push_str(REDACTED);
                }
                // A parameter without `=` holding an `@` may be the end of a
                // password with a `?` in it.
                None if pair.contains('@') => out.push_str(REDACTED),
                _ => out.push_str(pair),
            }
        }
    }
    out
}

/// `scheme://user:pass@host` → `scheme://***@host`, `user@host` → `***@host`.
fn redact_userinfo(host: &str) -> String {
    let Some(at) = host.rfind('@') else {
        return host.to_string();
    };
    let start = host.find("://").map_or(0, |i| i + 3);
    if start > at {
        return host.to_string();
    }
    format!("{}{REDACTED}{}", &host[..start], &host[at..])
}

fn percent_decode_lossy(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_property_names() {
        for name in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.truststore.password",
            "sasl.oauthbearer.client.secret",
            "ssl.key.pem",
            "sasl.jaas.config",
            "sasl.oauthbearer.config",
            "producer.sasl.password",
            "consumer.ssl.key.password",
            "admin.sasl.oauthbearer.client.secret",
            "SASL.PASSWORD",
            "my.api.secret",
            "some.password.file",
        ] {
            assert!(is_secret_property(name), "{name}");
        }
        for name in [
            "sasl.username",
            "security.protocol",
            "ssl.ca.location",
            "ssl.keystore.location",
            "producer.linger.ms",
            "bootstrap.servers",
        ] {
            assert!(!is_secret_property(name), "{name}");
        }
    }

    #[test]
    fn urls_lose_their_secrets_and_keep_the_rest() {
        for (url, redacted) in [
            ("kafka://a:9092", "kafka://a:9092"),
            ("memory://", "memory://"),
            ("not a url", "not a url"),
            (
                "kafka://a:9092,b:9093?sasl.username=app&sasl.password=p%40ss&linger.ms=5",
                "kafka://a:9092,b:9093?sasl.username=app&sasl.password=***&linger.ms=5",
            ),
            (
                "kafka://a:1?producer.sasl.password=x&consumer.ssl.key.password=y&admin.ssl.keystore.password=z",
                "kafka://a:1?producer.sasl.password=***&consumer.ssl.key.password=***&admin.ssl.keystore.password=***",
            ),
            (
                "kafka://a:1?sasl.oauthbearer.client.secret=s&ssl.key.pem=-----BEGIN&sasl.jaas.config=x%20y&ssl.truststore.password=t",
                "kafka://a:1?sasl.oauthbearer.client.secret=***&ssl.key.pem=***&sasl.jaas.config=***&ssl.truststore.password=***",
            ),
            // Percent-encoded names.
            ("kafka://a:1?sasl%2Epassword=p", "kafka://a:1?sasl%2Epassword=***"),
            ("kafka://a:1?sasl.pass%77ord=p", "kafka://a:1?sasl.pass%77ord=***"),
            // Userinfo, in every host.
            ("kafka://app:pass@a:9092", "kafka://***@a:9092"),
            ("kafka://app@a:9092", "kafka://***@a:9092"),
            (
                "kafka://u:p@a:1;kafka://u:p@b:2,u:p@c:3",
                "kafka://***@a:1;kafka://***@b:2,***@c:3",
            ),
            ("kafka://u:p%40ss@a:1", "kafka://***@a:1"),
            ("kafka://u:p@@a:1", "kafka://***@a:1"),
            ("kafka://u:pa?ss@a:1", "kafka://***@a:1"),
            ("kafka://u:pa?ss@a:1?linger.ms=1", "kafka://***@a:1?linger.ms=1"),
        ] {
            assert_eq!(redact_url(url), redacted, "{url}");
        }
    }
}
