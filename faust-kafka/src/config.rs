//! Connection settings: the `kafka://` URL, the librdkafka properties of
//! each client, and the few settings of this crate (`faust.*`).

use std::collections::BTreeMap;
use std::time::Duration;

use faust_core::redact::{is_secret_property, redact_url, REDACTED};
use faust_core::{Error, Result};
use rdkafka::error::KafkaError;
use rdkafka::ClientConfig;

/// Scheme of the URLs this crate handles.
pub const SCHEME: &str = "kafka://";

/// librdkafka properties set on every client unless overridden.
/// The reconnect back-off is capped at 1 s, the Java client's default:
/// librdkafka's 10 s cap made processing resume up to several seconds
/// after a broker came back from an outage.
const COMMON_DEFAULTS: &[(&str, &str)] = &[
    ("client.id", "faust-rs"),
    ("reconnect.backoff.max.ms", "1000"),
];

/// Producer defaults, for throughput: records linger up to 5 ms to be
/// batched (requests and replies go through the immediate producer,
/// which does not linger), and at most 64 MiB of them wait for delivery
/// (then sends wait for room), so memory stays flat however far the
/// producer runs ahead of the broker. The partitioner is the Java
/// client's (murmur2 of the key, as Python Faust and the in-memory
/// broker), not librdkafka's CRC32 default, so that keyed records land
/// where other Kafka clients put them.
const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("partitioner", "murmur2_random"),
    ("linger.ms", "5"),
    ("queue.buffering.max.kbytes", "65536"),
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("message.timeout.ms", "30000"),
];

/// What the immediate producer (records someone waits for: requests and
/// replies, [`Transport::try_enqueue_immediate`](faust_core::transport::Transport::try_enqueue_immediate))
/// changes of the producer's settings: it sends at once.
const IMMEDIATE_DEFAULTS: &[(&str, &str)] = &[("linger.ms", "0")];

/// Consumer defaults. The rebalance protocol is librdkafka's default
/// (eager, `range,roundrobin` assignors); `cooperative-sticky` works too,
/// since the runtime handles revocations partition by partition.
///
/// librdkafka postpones the next fetch of a partition by
/// `fetch.queue.backoff.ms` (1 s by default) once its local queue holds
/// `queued.min.messages` (100 000 by default) or `queued.max.messages.kbytes`:
/// a consumer that keeps up then waits a second for each refill. Here it
/// refills after 1 ms, keeps 10 000 records per partition ahead, and at
/// most 16 MiB in all.
const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("fetch.wait.max.ms", "10"),
    ("fetch.queue.backoff.ms", "1"),
    ("queued.min.messages", "10000"),
    ("queued.max.messages.kbytes", "16384"),
    ("enable.partition.eof", "false"),
    // Each partition's end offset for the lag metrics, without asking the
    // broker (`consumer.statistics.interval.ms=0` turns it off).
    ("statistics.interval.ms", "5000"),
];

/// Consumer properties this crate always sets (the runtime commits offsets
/// itself, after processing).
const CONSUMER_FORCED: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
];

/// Admin client defaults: a metadata lookup must never create a topic.
const ADMIN_DEFAULTS: &[(&str, &str)] = &[("allow.auto.create.topics", "false")];

/// The settings of this crate that are not librdkafka properties, with
/// their URL parameter names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    /// `faust.operation.timeout.ms`: deadline of topic creation, metadata
    /// lookups, commits and committed-offset lookups (15 s).
    pub(crate) operation_timeout: Duration,
    /// `faust.revoke.timeout.ms`: how long a revocation waits for the
    /// runtime to release its partitions (15 s: the runtime's default
    /// rebalance timeout of 10 s plus a margin).
    pub(crate) revoke_timeout: Duration,
    /// `faust.batch.max.records`: most records in one `Records` event (1000).
    pub(crate) max_batch: usize,
    /// `faust.buffer.batches`: batches buffered between the consumer thread
    /// and the runtime before the thread stops fetching (32).
    pub(crate) buffered_batches: usize,
    /// `faust.delivery.timeout.ms`: how long a record may take to be
    /// delivered, produced again each time librdkafka gives up on it after
    /// `message.timeout.ms` (120 s).
    pub(crate) delivery_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            operation_timeout: Duration::from_secs(15),
            revoke_timeout: Duration::from_secs(15),
            max_batch: 1000,
            buffered_batches: 32,
            delivery_timeout: Duration::from_secs(120),
        }
    }
}

const SETTING_NAMES: &str = "faust.operation.timeout.ms, faust.revoke.timeout.ms, \
                             faust.batch.max.records, faust.buffer.batches, \
                             faust.delivery.timeout.ms";

/// A checked [`KafkaBuilder`]: what a transport is made of.
pub(crate) struct Resolved {
    /// The broker URL, secrets redacted.
    pub(crate) url: String,
    pub(crate) bootstrap: String,
    pub(crate) configs: ClientConfigs,
    pub(crate) settings: Settings,
}

/// Builds a [`KafkaTransport`](crate::KafkaTransport) from a bootstrap server list and settings.
///
/// Every property is a librdkafka property
/// (see librdkafka's `CONFIGURATION.md`) applied to every client, unless its
/// name starts with `producer.`, `consumer.` or `admin.`: then it applies,
/// without the prefix, to that client only. Records someone waits for
/// (requests and replies) go through a second producer, the immediate one,
/// with the producer's settings and `linger.ms=0`; `immediate.` + a
/// property applies to it alone. Names starting with `faust.` are
/// settings of this crate:
///
/// | name | default | meaning |
/// |---|---|---|
/// | `faust.operation.timeout.ms` | 15000 | deadline of topic creation, metadata lookups and commits |
/// | `faust.revoke.timeout.ms` | 15000 | how long a revocation waits for the runtime |
/// | `faust.batch.max.records` | 1000 | most records per consumer event |
/// | `faust.buffer.batches` | 32 | batches buffered before the consumer thread stops fetching |
/// | `faust.delivery.timeout.ms` | 120000 | how long a record may take to be delivered (counted from when it, or the first output of its event, was queued): when librdkafka gives up on it (`message.timeout.ms`, e.g. during a broker outage) it is produced again until then |
///
/// Defaults set unless overridden: `client.id=faust-rs`,
/// `reconnect.backoff.max.ms=1000` (Java's; librdkafka's is 10 s); producer
/// `partitioner=murmur2_random` (Java-compatible), `linger.ms=5`,
/// `queue.buffering.max.kbytes=65536` (the bound on records waiting for
/// delivery), `acks=all`, `enable.idempotence=true`,
/// `message.timeout.ms=30000`; immediate producer `linger.ms=0`; consumer
/// `fetch.wait.max.ms=10`, `fetch.queue.backoff.ms=1`,
/// `queued.min.messages=10000`, `queued.max.messages.kbytes=16384`
/// (librdkafka's defaults, 1 s, 100 000 and 64 MiB, pause a consumer that
/// keeps up for a second at each refill), `statistics.interval.ms=5000`,
/// `enable.partition.eof=false`; admin `allow.auto.create.topics=false`.
/// Always set on group consumers: `group.id`, `auto.offset.reset` (from
/// the subscription), `enable.auto.commit=false`,
/// `enable.auto.offset.store=false`.
///
/// ```no_run
/// # fn main() -> faust_core::Result<()> {
/// use faust_kafka::KafkaTransport;
/// let transport = KafkaTransport::builder("127.0.0.1:9092")
///     .set("security.protocol", "plaintext")
///     .set("consumer.session.timeout.ms", "10000")
///     .build()?;
/// # let _ = transport; Ok(()) }
/// ```
#[derive(Clone)]
pub struct KafkaBuilder {
    url: Option<String>,
    bootstrap: String,
    common: BTreeMap<String, String>,
    producer: BTreeMap<String, String>,
    immediate: BTreeMap<String, String>,
    consumer: BTreeMap<String, String>,
    admin: BTreeMap<String, String>,
    settings: Settings,
    errors: Vec<String>,
}

impl std::fmt::Debug for KafkaBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Property values may be secrets (`sasl.password`): names only.
        let names = |m: &BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
        f.debug_struct("KafkaBuilder")
            .field("bootstrap", &self.bootstrap)
            .field("common", &names(&self.common))
            .field("producer", &names(&self.producer))
            .field("immediate", &names(&self.immediate))
            .field("consumer", &names(&self.consumer))
            .field("admin", &names(&self.admin))
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl KafkaBuilder {
    /// A builder for these bootstrap servers (`host:port[,host:port...]`).
    pub fn new(bootstrap: impl Into<String>) -> Self {
        Self {
            url: None,
            bootstrap: bootstrap.into(),
            common: BTreeMap::new(),
            producer: BTreeMap::new(),
            immediate: BTreeMap::new(),
            consumer: BTreeMap::new(),
            admin: BTreeMap::new(),
            settings: Settings::default(),
            errors: Vec::new(),
        }
    }

    /// Parse a `kafka://host:port[,host:port...][?key=value&...]` URL.
    ///
    /// Hosts may also be separated by `;`, each optionally repeating the
    /// scheme (`kafka://a:9092;kafka://b:9092`, as Python Faust allows).
    /// Query parameters go through [`set`](Self::set); values may be
    /// percent-encoded.
    pub fn from_url(url: &str) -> Result<Self> {
        let bad = |reason: String| Error::BrokerUrl {
            url: redact_url(url),
            reason,
        };
        let rest = url
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad(format!("expected `{SCHEME}host:port`")))?;
        let (hosts, query) = match rest.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (rest, None),
        };
        let mut servers = Vec::new();
        for host in hosts.split([',', ';']) {
            let host = host.trim();
            let host = host
                .strip_prefix(SCHEME)
                .unwrap_or(host)
                .trim_end_matches('/');
            if host.is_empty() {
                return Err(bad(
                    "expected `kafka://host:port[,host:port...]`: a host is empty".into(),
                ));
            }
            if host.contains('@')
                || rest.split('?').nth(1).is_some_and(|q| {
                    q.split(['&', '?'])
                        .next()
                        .is_some_and(|p| p.contains('@') && !p.contains('='))
                })
            {
                return Err(bad(
                    "credentials in the host part (`user:password@host`) are not supported: \
                     set `sasl.username` and `sasl.password` as query parameters"
                        .into(),
                ));
            }
            if host.contains(['/', '?', '#', ' ']) {
                return Err(bad(format!("invalid host `{host}`")));
            }
            servers.push(host.to_string());
        }
        let mut builder = Self::new(servers.join(","));
        builder.url = Some(url.to_string());
        for pair in query.unwrap_or_default().split('&') {
            if pair.is_empty() {
                continue;
            }
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                bad(format!(
                    "query parameter `{}` has no `=value`",
                    if pair.contains('@') { REDACTED } else { pair }
                ))
            })?;
            let key = percent_decode(key)
                .map_err(|why| bad(format!("{why} in the parameter name `{key}`")))?;
            let value = percent_decode(value)
                .map_err(|why| bad(format!("{why} in the value of `{key}`")))?;
            if key.is_empty() {
                return Err(bad("a query parameter has an empty name".into()));
            }
            builder = builder.set(key, value);
        }
        if let Some(err) = builder.errors.first() {
            return Err(bad(err.clone()));
        }
        Ok(builder)
    }

    /// Set a property: a librdkafka property for every client,
    /// `producer.`/`consumer.`/`admin.` + a property for one client
    /// (`immediate.` + a property: for the immediate producer only, on top
    /// of the `producer.` ones), or a
    /// `faust.*` setting (see the table above). Invalid values are reported
    /// by [`build`](Self::build).
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        let value = value.into();
        if let Some(k) = key.strip_prefix("producer.") {
            self.producer.insert(k.to_string(), value);
        } else if let Some(k) = key.strip_prefix("immediate.") {
            self.immediate.insert(k.to_string(), value);
        } else if let Some(k) = key.strip_prefix("consumer.") {
            self.consumer.insert(k.to_string(), value);
        } else if let Some(k) = key.strip_prefix("admin.") {
            self.admin.insert(k.to_string(), value);
        } else if key.starts_with("faust.") {
            if let Err(e) = self.set_setting(&key, &value) {
                self.errors.push(e);
            }
        } else {
            self.common.insert(key, value);
        }
        self
    }

    fn set_setting(&mut self, key: &str, value: &str) -> std::result::Result<(), String> {
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("`{key}` must be a non-negative integer, not `{value}`"))
        };
        match key {
            "faust.operation.timeout.ms" => {
                self.settings.operation_timeout = Duration::from_millis(number()?.max(1))
            }
            "faust.revoke.timeout.ms" => {
                self.settings.revoke_timeout = Duration::from_millis(number()?)
            }
            "faust.batch.max.records" => self.settings.max_batch = number()?.max(1) as usize,
            "faust.buffer.batches" => self.settings.buffered_batches = number()?.max(1) as usize,
            "faust.delivery.timeout.ms" => {
                self.settings.delivery_timeout = Duration::from_millis(number()?)
            }
            _ => return Err(format!("unknown setting `{key}`; known: {SETTING_NAMES}")),
        }
        Ok(())
    }

    /// Deadline of topic creation, metadata lookups and commits (15 s).
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.settings.operation_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long a revocation waits for the runtime to release the revoked
    /// partitions before handing them over anyway (15 s).
    pub fn revoke_timeout(mut self, timeout: Duration) -> Self {
        self.settings.revoke_timeout = timeout;
        self
    }

    /// Most records in one consumer event (1000).
    pub fn max_batch(mut self, records: usize) -> Self {
        self.settings.max_batch = records.max(1);
        self
    }

    /// How long a record may take to be delivered (120 s). librdkafka
    /// retries a record until its `message.timeout.ms` (30 s here); a record
    /// it gives up on with a transient error (a broker outage) is produced
    /// again, until this deadline. Then its delivery fails.
    pub fn delivery_timeout(mut self, timeout: Duration) -> Self {
        self.settings.delivery_timeout = timeout;
        self
    }

    /// Batches buffered between a consumer thread and the runtime (32).
    pub fn buffered_batches(mut self, batches: usize) -> Self {
        self.settings.buffered_batches = batches.max(1);
        self
    }

    /// Check the properties and resolve each client's configuration (see
    /// [`build`](Self::build)).
    pub(crate) fn resolve(self) -> Result<Resolved> {
        let url = redact_url(
            self.url
                .as_deref()
                .unwrap_or(&format!("{SCHEME}{}", self.bootstrap)),
        );
        if let Some(err) = self.errors.first() {
            return Err(Error::BrokerUrl {
                url,
                reason: err.clone(),
            });
        }
        if self.bootstrap.trim().is_empty() {
            return Err(Error::BrokerUrl {
                url,
                reason: "no bootstrap server given".into(),
            });
        }
        if let Some(reason) = self.missing_feature() {
            return Err(Error::BrokerUrl { url, reason });
        }
        let mut immediate = self.client_config(PRODUCER_DEFAULTS, &self.producer, &[]);
        for (k, v) in IMMEDIATE_DEFAULTS {
            immediate.set(*k, *v);
        }
        for (k, v) in &self.immediate {
            immediate.set(k.as_str(), v.as_str());
        }
        let configs = ClientConfigs {
            producer: self.client_config(PRODUCER_DEFAULTS, &self.producer, &[]),
            immediate,
            consumer: self.client_config(CONSUMER_DEFAULTS, &self.consumer, CONSUMER_FORCED),
            admin: self.client_config(ADMIN_DEFAULTS, &self.admin, &[]),
        };
        // Report bad property names or values now, not at the first
        // subscribe or the first ask.
        for (client, config) in [
            ("consumer", &configs.consumer),
            ("immediate producer", &configs.immediate),
        ] {
            config
                .create_native_config()
                .map_err(|e| Error::BrokerUrl {
                    url: url.clone(),
                    reason: describe_config_error(client, &e),
                })?;
        }
        Ok(Resolved {
            url,
            bootstrap: self.bootstrap,
            configs,
            settings: self.settings,
        })
    }

    /// What the properties need that this build lacks: TLS and SCRAM need
    /// the `ssl` feature (OpenSSL), GSSAPI the `gssapi` feature.
    fn missing_feature(&self) -> Option<String> {
        let properties = || {
            [
                &self.common,
                &self.producer,
                &self.immediate,
                &self.consumer,
                &self.admin,
            ]
            .into_iter()
            .flat_map(|m| m.iter())
        };
        let value_of = |names: &[&str]| {
            properties()
                .filter(|(k, _)| names.contains(&k.as_str()))
                .map(|(_, v)| v.trim().to_ascii_uppercase())
                .collect::<Vec<_>>()
        };
        let mechanisms = value_of(&["sasl.mechanism", "sasl.mechanisms"]);
        let protocols = value_of(&["security.protocol"]);
        let needs = |feature: &str, what: String| {
            Some(format!(
                "{what} needs the `{feature}` feature: faust-rs = {{ version = \"{}\", features = [\"{feature}\"] }} \
                 (faust-kafka's feature of the same name; see the Security section of docs/kafka.md)",
                env!("CARGO_PKG_VERSION")
            ))
        };
        if !cfg!(feature = "gssapi") && mechanisms.iter().any(|m| m == "GSSAPI") {
            return needs("gssapi", "SASL/GSSAPI (Kerberos)".into());
        }
        if cfg!(feature = "ssl") {
            return None;
        }
        if let Some(p) = protocols.iter().find(|p| *p == "SSL" || *p == "SASL_SSL") {
            return needs(
                "ssl",
                format!("TLS (`security.protocol={}`)", p.to_lowercase()),
            );
        }
        if let Some(m) = mechanisms.iter().find(|m| m.starts_with("SCRAM-")) {
            return needs("ssl", format!("SASL/{m}"));
        }
        if let Some((k, _)) =
            properties().find(|(k, _)| k.starts_with("ssl.") || k.starts_with("ssl_"))
        {
            return needs("ssl", format!("TLS (`{k}`)"));
        }
        None
    }

    fn client_config(
        &self,
        defaults: &[(&str, &str)],
        specific: &BTreeMap<String, String>,
        forced: &[(&str, &str)],
    ) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (k, v) in COMMON_DEFAULTS.iter().chain(defaults) {
            config.set(*k, *v);
        }
        config.set("bootstrap.servers", self.bootstrap.as_str());
        for (k, v) in self.common.iter().chain(specific) {
            config.set(k.as_str(), v.as_str());
        }
        for (k, v) in forced {
            config.set(*k, *v);
        }
        config
    }
}

/// The librdkafka configuration of each kind of client (no `Debug`: values
/// may be secrets).
#[derive(Clone)]
pub(crate) struct ClientConfigs {
    pub(crate) producer: ClientConfig,
    /// The producer of records someone waits for (requests, replies).
    pub(crate) immediate: ClientConfig,
    pub(crate) consumer: ClientConfig,
    pub(crate) admin: ClientConfig,
}

/// Why librdkafka refused a configuration, naming the property, without the
/// value of a secret one.
pub(crate) fn describe_config_error(client: &str, e: &KafkaError) -> String {
    match e {
        KafkaError::ClientConfig(_, desc, key, _) if !key.is_empty() => {
            let desc = if is_secret_property(key) {
                "invalid value"
            } else {
                desc.as_str()
            };
            format!("invalid client property `{key}` ({client} configuration): {desc}")
        }
        other => format!("invalid {client} configuration: {other}"),
    }
}

/// Percent-decode `s`; the error names the problem, not `s` (it may be a
/// secret).
fn percent_decode(s: &str) -> std::result::Result<String, &'static str> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("invalid percent-encoding")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "text that is not UTF-8 once decoded")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(c: &'a ClientConfig, k: &str) -> Option<&'a str> {
        c.get(k)
    }

    #[test]
    fn url_hosts_and_params() {
        let b = KafkaBuilder::from_url(
            "kafka://a:9092,kafka://b:9093;c:1/?linger.ms=5&producer.acks=1&consumer.session.timeout.ms=6000&faust.batch.max.records=7&sasl.password=p%40ss",
        )
        .unwrap();
        assert_eq!(b.bootstrap, "a:9092,b:9093,c:1");
        assert_eq!(b.settings.max_batch, 7);
        let p = b.client_config(PRODUCER_DEFAULTS, &b.producer, &[]);
        assert_eq!(get(&p, "acks"), Some("1"));
        assert_eq!(get(&p, "linger.ms"), Some("5"));
        assert_eq!(get(&p, "sasl.password"), Some("p@ss"));
        assert_eq!(get(&p, "session.timeout.ms"), None);
        let c = b.client_config(CONSUMER_DEFAULTS, &b.consumer, CONSUMER_FORCED);
        assert_eq!(get(&c, "session.timeout.ms"), Some("6000"));
        assert_eq!(get(&c, "fetch.wait.max.ms"), Some("10"));
        assert_eq!(get(&c, "enable.auto.commit"), Some("false"));
        assert_eq!(get(&c, "acks"), None);
        let debug = format!("{b:?}");
        assert!(
            debug.contains("sasl.password") && !debug.contains("p@ss"),
            "{debug}"
        );
    }

    #[test]
    fn the_immediate_producer_is_the_producer_without_linger() {
        let r = KafkaBuilder::from_url(
            "kafka://a:9092?producer.acks=1&producer.linger.ms=20&compression.type=lz4",
        )
        .unwrap()
        .resolve()
        .unwrap();
        let (p, i) = (&r.configs.producer, &r.configs.immediate);
        assert_eq!(get(p, "linger.ms"), Some("20"));
        assert_eq!(get(i, "linger.ms"), Some("0"));
        for k in [
            "acks",
            "compression.type",
            "enable.idempotence",
            "partitioner",
        ] {
            assert_eq!(get(i, k), get(p, k), "{k}");
        }
        let r = KafkaBuilder::from_url("kafka://a:9092?immediate.linger.ms=2")
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(get(&r.configs.immediate, "linger.ms"), Some("2"));
        assert_eq!(get(&r.configs.producer, "linger.ms"), Some("5"));
        let err = KafkaBuilder::from_url("kafka://a:9092?immediate.linger.ms=soon")
            .unwrap()
            .build()
            .err()
            .unwrap();
        assert!(err.to_string().contains("linger.ms"), "{err}");
    }

    #[test]
    fn bad_urls_are_rejected_with_a_reason() {
        for url in [
            "kafka://",
            "kafka://a:1,,b:2",
            "kafka://a:1?x",
            "kafka://a:1?faust.nope=1",
            "kafka://a:1?faust.revoke.timeout.ms=soon",
            "kafka://a:1?k=%zz",
            "http://a:1",
        ] {
            let err = KafkaBuilder::from_url(url).unwrap_err();
            assert!(matches!(err, Error::BrokerUrl { .. }), "{url}: {err}");
        }
    }

    #[test]
    fn unknown_librdkafka_property_fails_build() {
        let err = KafkaBuilder::from_url("kafka://127.0.0.1:1?no.such.property=1")
            .unwrap()
            .build()
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("invalid client property `no.such.property`"),
            "{text}"
        );
        assert!(!text.contains("unsupported"), "{text}");
        let err = KafkaBuilder::from_url("kafka://127.0.0.1:1?producer.linger.ms=soon")
            .unwrap()
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::BrokerUrl { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("invalid client property `linger.ms`"),
            "{err}"
        );
    }

    #[test]
    fn errors_never_echo_secrets() {
        for url in [
            "kafka://alice:hunter2@a:1",
            "kafka://a:1?sasl.password=hunter2%zz",
            "kafka://a:1?sasl.password=hunter2&x",
            "kafka://a:1?sasl.password=hunter2&faust.nope=1",
            "kafka://alice:hunt?er2@a:1",
        ] {
            let err = KafkaBuilder::from_url(url).unwrap_err();
            assert!(matches!(err, Error::BrokerUrl { .. }), "{url}: {err}");
            for part in ["hunter2", "hunt", "er2"] {
                assert!(!err.to_string().contains(part), "{url}: {err}");
            }
        }
        let err = KafkaBuilder::from_url("kafka://alice:hunter2@a:1").unwrap_err();
        assert!(err.to_string().contains("sasl.password"), "{err}");
        // librdkafka echoes invalid values; not those of secret properties.
        let err = KafkaBuilder::from_url("kafka://a:1?sasl.password=hunter2&no.such=1")
            .unwrap()
            .build()
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
