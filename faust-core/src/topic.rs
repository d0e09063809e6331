//! Topics declared by an app ([`Topic`], Faust's `app.topic(...)`): a name
//! with the settings to create it with and the codecs of its records.
//!
//! An app creates the topics it declares when it starts
//! ([`App::topic`](crate::App::topic), the topics of its agents and of
//! their topic sinks). A topic that exists already is checked: a setting
//! the declaration states (partitions, replicas, retention, cleanup policy)
//! that differs on the broker is an [`Error::TopicMismatch`], not silently
//! used. Settings not stated are not compared, so topics made by others
//! keep working.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::codec::{CodecRef, Value};
use crate::error::{Error, Result};
use crate::schema::{Schema, TypeName};
pub use crate::transport::CleanupPolicy;
use crate::transport::TopicSpec;

/// A topic: its name, how to create it, and the codecs of its records.
/// Cheap to clone (a shared handle).
///
/// Pass it where a topic name goes: to
/// [`AgentSpec::topic`](crate::AgentSpec::topic), to
/// [`Sink::topic`](crate::Sink::topic), to
/// [`App::send_to`](crate::App::send_to); a `&str` or `String` converts into
/// a topic that states nothing but its name.
///
/// ```
/// # use faust_core as faust;
/// use std::time::Duration;
/// use faust::Topic;
///
/// let orders = Topic::new("orders")
///     .partitions(4)
///     .replicas(1)
///     .retention(Duration::from_secs(7 * 24 * 3600))
///     .value_codec("json");
/// let totals = Topic::new("order-totals").compacted().internal(true);
/// assert_eq!(orders.name(), "orders");
/// assert_eq!(orders.partition_count(), Some(4));
/// assert_eq!(totals.cleanup(), Some(faust::CleanupPolicy::Compact));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Topic {
    inner: Arc<TopicInner>,
}

#[derive(Clone, PartialEq, Eq)]
struct TopicInner {
    name: String,
    partitions: Option<i32>,
    replicas: Option<i16>,
    retention: Option<Duration>,
    cleanup_policy: Option<CleanupPolicy>,
    internal: bool,
    key_codec: Option<CodecRef>,
    value_codec: Option<CodecRef>,
    /// The key and value types of its schema, if it has one.
    types: Option<(TypeName, TypeName)>,
    configs: Vec<(String, String)>,
}

impl Topic {
    /// A topic named `name` that states nothing else: created, if missing,
    /// with the app's partitions and replicas and the broker's defaults.
    ///
    /// ```
    /// # use faust_core as faust;
    /// let t = faust::Topic::new("orders");
    /// assert_eq!(t.partition_count(), None);
    /// assert!(!t.is_internal());
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        Topic {
            inner: Arc::new(TopicInner {
                name: name.into(),
                partitions: None,
                replicas: None,
                retention: None,
                cleanup_policy: None,
                internal: false,
                key_codec: None,
                value_codec: None,
                types: None,
                configs: Vec::new(),
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut TopicInner)) -> Self {
        f(Arc::make_mut(&mut self.inner));
        self
    }

    /// The number of partitions (default: the app's `topic_partitions`).
    ///
    /// ```
    /// # use faust_core as faust;
    /// assert_eq!(faust::Topic::new("t").partitions(4).partition_count(), Some(4));
    /// ```
    pub fn partitions(self, partitions: i32) -> Self {
        self.with(|t| t.partitions = Some(partitions))
    }

    /// The replication factor (default: the app's `topic_replication`).
    ///
    /// ```
    /// # use faust_core as faust;
    /// assert_eq!(faust::Topic::new("t").replicas(3).replica_count(), Some(3));
    /// ```
    pub fn replicas(self, replicas: i16) -> Self {
        self.with(|t| t.replicas = Some(replicas))
    }

    /// How long records are kept (`retention.ms`; default: the broker's).
    ///
    /// ```
    /// # use faust_core as faust;
    /// use std::time::Duration;
    /// let t = faust::Topic::new("t").retention(Duration::from_secs(3600));
    /// assert_eq!(t.retention_time(), Some(Duration::from_secs(3600)));
    /// ```
    pub fn retention(self, retention: Duration) -> Self {
        self.with(|t| t.retention = Some(retention))
    }

    /// What happens to old records (`cleanup.policy`; default: the
    /// broker's, `delete`).
    ///
    /// ```
    /// # use faust_core as faust;
    /// use faust::{CleanupPolicy, Topic};
    /// let t = Topic::new("t").cleanup_policy(CleanupPolicy::CompactDelete);
    /// assert_eq!(t.cleanup(), Some(CleanupPolicy::CompactDelete));
    /// ```
    pub fn cleanup_policy(self, policy: CleanupPolicy) -> Self {
        self.with(|t| t.cleanup_policy = Some(policy))
    }

    /// Compacted: the broker keeps the latest record of each key
    /// (`cleanup.policy=compact`), as for a changelog.
    ///
    /// ```
    /// # use faust_core as faust;
    /// let t = faust::Topic::new("t").compacted();
    /// assert_eq!(t.cleanup(), Some(faust::CleanupPolicy::Compact));
    /// ```
    pub fn compacted(self) -> Self {
        self.cleanup_policy(CleanupPolicy::Compact)
    }

    /// Whether the app owns the topic (Faust's internal topics: an agent's
    /// own topic, a changelog). An internal topic is also checked for the
    /// settings it does not state: partitions and replicas must be the
    /// app's defaults and the cleanup policy `delete`. A topic that is not
    /// internal (the default) is created if missing too, but only the
    /// settings it states are compared.
    ///
    /// ```
    /// # use faust_core as faust;
    /// assert!(faust::Topic::new("t").internal(true).is_internal());
    /// ```
    pub fn internal(self, internal: bool) -> Self {
        self.with(|t| t.internal = internal)
    }

    /// The codec of values sent to and read from this topic (default: the
    /// reading agent's, else the app's). An agent reading the topic without
    /// a codec of its own uses it, so do sinks and
    /// [`App::send_to`](crate::App::send_to).
    ///
    /// ```
    /// # use faust_core as faust;
    /// use faust::Topic;
    /// let t = Topic::new("t").value_codec("bincode");
    /// assert_eq!(t.value_serializer().unwrap().name(), "bincode");
    /// ```
    ///
    /// A codec value or a name, looked up in the app's codecs when an agent
    /// or sink uses the topic, or when the app sends to it.
    pub fn value_codec(self, codec: impl Into<CodecRef>) -> Self {
        let codec = codec.into();
        self.with(|t| t.value_codec = Some(codec))
    }

    /// The codec of keys (default: the reading agent's, else raw bytes).
    ///
    /// ```
    /// # use faust_core as faust;
    /// use faust::Topic;
    /// let t = Topic::new("t").key_codec("json");
    /// assert_eq!(t.key_serializer().unwrap().name(), "json");
    /// ```
    pub fn key_codec(self, codec: impl Into<CodecRef>) -> Self {
        let codec = codec.into();
        self.with(|t| t.key_codec = Some(codec))
    }

    /// Another topic config set when the app creates the topic (Kafka's
    /// name, e.g. `min.insync.replicas`); not compared with an existing
    /// topic. Setting a key again replaces its value.
    ///
    /// ```
    /// # use faust_core as faust;
    /// let t = faust::Topic::new("t").config("segment.ms", "600000");
    /// assert_eq!(t.configs(), [("segment.ms".to_string(), "600000".to_string())]);
    /// ```
    pub fn config(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        self.with(|t| match t.configs.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => t.configs.push((key, value)),
        })
    }

    /// The topic name.
    ///
    /// ```
    /// # use faust_core as faust;
    /// assert_eq!(faust::Topic::from("orders").name(), "orders");
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The partitions it states, if any.
    ///
    /// ```
    /// # use faust_core as faust;
    /// assert_eq!(faust::Topic::new("t").partition_count(), None);
    /// ```
    pub fn partition_count(&self) -> Option<i32> {
        self.inner.partitions
    }

    /// The replication factor it states, if any.
    ///
    /// ```
    /// # use faust_core as faust;
    /// assert_eq!(faust::Topic::new("t").replica_count(), None);
    /// ```
    pub fn replica_count(&self) -> Option<i16> {
        self.inner.replicas
    }

    /// The retention it states, if any.
    ///
    /// ```
    /// # use faust_core as faust;
    /// assert_eq!(faust::Topic::new("t").retention_time(), None);
    /// ```
    pub fn retention_time(&self) -> Option<Duration> {
        self.inner.retention
    }

    /// The cleanup policy it states, if any.
    ///
    /// ```
    /// # use faust_core as faust;
    /// assert_eq!(faust::Topic::new("t").cleanup(), None);
    /// ```
    pub fn cleanup(&self) -> Option<CleanupPolicy> {
        self.inner.cleanup_policy
    }

    /// Whether the app owns it ([`internal`](Self::internal)).
    ///
    /// ```
    /// # use faust_core as faust;
    /// assert!(!faust::Topic::new("t").is_internal());
    /// ```
    pub fn is_internal(&self) -> bool {
        self.inner.internal
    }

    /// The schema of its records (Faust's `schema=`, `key_type=`,
    /// `value_type=`): its codecs become the topic's (those it states), and
    /// an agent reading the topic must take values of type `V`.
    ///
    /// ```
    /// # use faust_core as faust;
    /// use faust::{Schema, Topic};
    /// let t = Topic::new("t").schema(Schema::<String, u64>::new().value_codec("bincode"));
    /// assert_eq!(t.value_serializer().unwrap().name(), "bincode");
    /// assert_eq!(t.key_type(), Some("alloc::string::String"));
    /// ```
    pub fn schema<K: Value, V: Value>(self, schema: Schema<K, V>) -> Self {
        let s = schema.erased;
        self.with(|t| {
            if s.key_codec.is_some() {
                t.key_codec = s.key_codec;
            }
            if s.value_codec.is_some() {
                t.value_codec = s.value_codec;
            }
            t.types = Some((s.key_type, s.value_type));
        })
    }

    /// The value type of its schema, if it has one.
    pub fn value_type(&self) -> Option<&'static str> {
        self.inner.types.map(|(_, v)| v.name)
    }

    /// The key type of its schema, if it has one.
    pub fn key_type(&self) -> Option<&'static str> {
        self.inner.types.map(|(k, _)| k.name)
    }

    /// The value type of its schema, with its id.
    pub(crate) fn schema_value_type(&self) -> Option<TypeName> {
        self.inner.types.map(|(_, v)| v)
    }

    /// Its value codec, if it has one.
    ///
    /// ```
    /// # use faust_core as faust;
    /// assert_eq!(faust::Topic::new("t").value_serializer(), None);
    /// ```
    pub fn value_serializer(&self) -> Option<&CodecRef> {
        self.inner.value_codec.as_ref()
    }

    /// Its key codec, if it has one.
    ///
    /// ```
    /// # use faust_core as faust;
    /// assert_eq!(faust::Topic::new("t").key_serializer(), None);
    /// ```
    pub fn key_serializer(&self) -> Option<&CodecRef> {
        self.inner.key_codec.as_ref()
    }

    /// The further configs set at creation ([`config`](Self::config)).
    ///
    /// ```
    /// # use faust_core as faust;
    /// assert!(faust::Topic::new("t").configs().is_empty());
    /// ```
    pub fn configs(&self) -> &[(String, String)] {
        &self.inner.configs
    }

    /// Whether it states anything to check against an existing topic.
    pub(crate) fn states_settings(&self) -> bool {
        let t = &self.inner;
        t.internal
            || t.partitions.is_some()
            || t.replicas.is_some()
            || t.retention.is_some()
            || t.cleanup_policy.is_some()
    }

    /// Whether it states anything at all besides its name.
    fn states_anything(&self) -> bool {
        let t = &self.inner;
        self.states_settings()
            || t.key_codec.is_some()
            || t.value_codec.is_some()
            || !t.configs.is_empty()
    }

    /// The same topic declared twice (by the app and an agent, by two
    /// agents): one that states nothing gives way to the other; two that
    /// state different things are an error.
    pub(crate) fn merge(&self, other: &Topic) -> Result<Topic> {
        if self == other || !other.states_anything() {
            return Ok(self.clone());
        }
        if !self.states_anything() {
            return Ok(other.clone());
        }
        Err(Error::config(format!(
            "topic `{}` is declared twice with different settings ({self:?} and {other:?}): \
             declare it once (`App::topic`) and pass that Topic around",
            self.name()
        )))
    }

    /// How to create it, with the app's defaults where it states nothing.
    pub(crate) fn spec(&self, partitions: i32, replication: i16) -> TopicSpec {
        let t = &self.inner;
        TopicSpec {
            name: t.name.clone(),
            partitions: t.partitions.unwrap_or(partitions),
            replication: t.replicas.unwrap_or(replication),
            retention: t.retention,
            cleanup_policy: t.cleanup_policy.unwrap_or_default(),
            configs: t.configs.clone(),
        }
    }

    /// Compare what it states (all it decides, if internal) with the
    /// existing topic `found`; `wanted` is [`spec`](Self::spec).
    pub(crate) fn check(&self, wanted: &TopicSpec, found: &TopicSpec) -> Result<()> {
        let t = &self.inner;
        let mismatch = |setting: &'static str, wanted: String, found: String| {
            Err(Error::TopicMismatch {
                topic: t.name.clone(),
                setting,
                wanted,
                found,
            })
        };
        let all = t.internal;
        if (all || t.partitions.is_some()) && wanted.partitions != found.partitions {
            return mismatch(
                "partitions",
                wanted.partitions.to_string(),
                found.partitions.to_string(),
            );
        }
        if (all || t.replicas.is_some()) && wanted.replication != found.replication {
            return mismatch(
                "replicas",
                wanted.replication.to_string(),
                found.replication.to_string(),
            );
        }
        if t.retention.is_some() && wanted.retention != found.retention {
            let show = |r: Option<Duration>| match r {
                Some(r) => format!("{r:?}"),
                None => "the broker default (or unlimited)".to_string(),
            };
            return mismatch("retention", show(wanted.retention), show(found.retention));
        }
        if (all || t.cleanup_policy.is_some()) && wanted.cleanup_policy != found.cleanup_policy {
            return mismatch(
                "cleanup.policy",
                wanted.cleanup_policy.to_string(),
                found.cleanup_policy.to_string(),
            );
        }
        Ok(())
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.inner;
        let mut d = f.debug_struct("Topic");
        d.field("name", &t.name);
        if let Some(p) = t.partitions {
            d.field("partitions", &p);
        }
        if let Some(r) = t.replicas {
            d.field("replicas", &r);
        }
        if let Some(r) = t.retention {
            d.field("retention", &r);
        }
        if let Some(c) = t.cleanup_policy {
            d.field("cleanup_policy", &c);
        }
        if t.internal {
            d.field("internal", &true);
        }
        if let Some(c) = &t.key_codec {
            d.field("key_codec", &c);
        }
        if let Some(c) = &t.value_codec {
            d.field("value_codec", &c);
        }
        if !t.configs.is_empty() {
            d.field("configs", &t.configs);
        }
        d.finish()
    }
}

impl From<&str> for Topic {
    fn from(name: &str) -> Self {
        Topic::new(name)
    }
}

impl From<String> for Topic {
    fn from(name: String) -> Self {
        Topic::new(name)
    }
}

impl From<&String> for Topic {
    fn from(name: &String) -> Self {
        Topic::new(name.as_str())
    }
}

impl From<&Topic> for Topic {
    fn from(topic: &Topic) -> Self {
        topic.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_fills_the_app_defaults() {
        let t = Topic::new("t").retention(Duration::from_secs(60));
        let spec = t.spec(8, 1);
        assert_eq!(spec.partitions, 8);
        assert_eq!(spec.replication, 1);
        assert_eq!(spec.retention, Some(Duration::from_secs(60)));
        assert_eq!(spec.cleanup_policy, CleanupPolicy::Delete);
    }

    #[test]
    fn only_stated_settings_are_checked_unless_internal() {
        let found = TopicSpec::new("t", 2);
        let plain = Topic::new("t");
        plain.check(&plain.spec(8, 1), &found).unwrap();
        let four = Topic::new("t").partitions(4);
        let err = four.check(&four.spec(8, 1), &found).unwrap_err();
        assert_eq!(
            err.to_string(),
            "topic `t` exists with partitions 2, but the app declares partitions 4: change the \
             declaration to match, or alter or delete the topic on the broker"
        );
        let internal = Topic::new("t").internal(true);
        let err = internal.check(&internal.spec(8, 1), &found).unwrap_err();
        assert!(matches!(
            err,
            Error::TopicMismatch {
                setting: "partitions",
                ..
            }
        ));
        let compacted = Topic::new("t").compacted();
        let err = compacted.check(&compacted.spec(8, 1), &found).unwrap_err();
        assert!(err.to_string().contains("cleanup.policy delete"), "{err}");
    }

    #[test]
    fn declarations_merge_when_one_states_nothing() {
        let bare = Topic::new("t");
        let four = Topic::new("t").partitions(4);
        assert_eq!(bare.merge(&four).unwrap(), four);
        assert_eq!(four.merge(&bare).unwrap(), four);
        assert_eq!(four.merge(&four.clone()).unwrap(), four);
        let err = four.merge(&Topic::new("t").partitions(2)).unwrap_err();
        assert!(err.to_string().contains("declared twice"), "{err}");
    }
}
