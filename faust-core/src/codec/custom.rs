//! The traits behind codecs of your own: [`Codec`] (values to bytes and
//! back, at serde level) and [`Transform`] (bytes to bytes: base64,
//! compression, encryption).

/// The error a codec or transform returns: any error (a `&str` or `String`
/// converts too).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A codec of your own: how values become bytes and back (Faust's
/// `Codec`). Object safe; values reach it type-erased, through
/// [`erased_serde`], so one codec serves every value type.
///
/// Wrap any serde data format in a few lines. This one writes JSON after a
/// version prefix:
///
/// ```
/// # use faust_core as faust;
/// use faust::codec::{erased_serde, BoxError, Codec, ValueSlot};
///
/// struct VersionedJson;
///
/// impl Codec for VersionedJson {
///     fn encode(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, BoxError> {
///         let mut out = b"v1:".to_vec();
///         serde_json::to_writer(&mut out, value)?;
///         Ok(out)
///     }
///
///     fn decode(&self, bytes: &[u8], out: ValueSlot<'_>) -> Result<(), BoxError> {
///         let json = bytes.strip_prefix(b"v1:").ok_or("no `v1:` prefix")?;
///         let mut de = serde_json::Deserializer::from_slice(json);
///         out.deserialize(&mut de)?;
///         Ok(de.end()?)
///     }
/// }
///
/// // Register it by name, then name it where a codec goes:
/// let app = faust::App::builder("orders")
///     .codec("vjson", VersionedJson)
///     .build()?;
/// let agent = app.add_agent(
///     faust::AgentSpec::handler("double", |x: i64| async move { Ok::<_, faust::Error>(x * 2) })
///         .value_codec("vjson"),
/// )?;
/// assert_eq!(agent.value_codec().name(), "vjson");
///
/// // Or pass the value itself (its name: `name()`, the type's by default).
/// let codec = faust::codec::CodecRef::from(VersionedJson);
/// assert_eq!(codec.encode(&[1, 2])?, b"v1:[1,2]");
/// assert_eq!(codec.decode::<Vec<u8>>(b"v1:[3]")?, [3]);
/// # Ok::<_, faust::Error>(())
/// ```
pub trait Codec: Send + Sync + 'static {
    /// Encode a value. `value` implements [`serde::Serialize`]: hand it to
    /// any serde serializer (`serde_json::to_vec(value)`).
    fn encode(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, BoxError>;

    /// Decode `bytes`: make a serde deserializer over them and give it to
    /// [`out.deserialize`](ValueSlot::deserialize), which builds the value.
    fn decode(&self, bytes: &[u8], out: ValueSlot<'_>) -> Result<(), BoxError>;

    /// The name errors and [`Agent::info`](crate::Agent::info) show when
    /// the codec is used as a value rather than by its registered name
    /// (default: the type's name, without its module path).
    fn name(&self) -> &str {
        let full = std::any::type_name::<Self>();
        let path = full.split('<').next().unwrap_or(full);
        path.rsplit("::").next().unwrap_or(path)
    }
}

/// A transform of encoded bytes, chained after a codec: `"json|binary"` is
/// JSON, then base64 ([`Binary`](super::Binary)). Compression or encryption
/// fit here too.
///
/// ```
/// # use faust_core as faust;
/// use faust::codec::{BoxError, Transform};
///
/// /// Reverses the bytes (a stand-in for a compressor).
/// struct Reverse;
///
/// impl Transform for Reverse {
///     fn encode(&self, mut bytes: Vec<u8>) -> Result<Vec<u8>, BoxError> {
///         bytes.reverse();
///         Ok(bytes)
///     }
///     fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>, BoxError> {
///         Ok(bytes.iter().rev().copied().collect())
///     }
/// }
///
/// let app = faust::App::builder("orders").transform("reverse", Reverse).build()?;
/// let codec = app.codec("json|reverse")?;
/// assert_eq!(codec.encode(&[1, 2])?, b"]2,1[");
/// # Ok::<_, faust::Error>(())
/// ```
pub trait Transform: Send + Sync + 'static {
    /// Transform encoded bytes on the way out.
    fn encode(&self, bytes: Vec<u8>) -> Result<Vec<u8>, BoxError>;

    /// Undo [`encode`](Self::encode) on the way in.
    fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>, BoxError>;
}

/// Where [`Codec::decode`] puts the value: give it a serde deserializer
/// over the bytes.
pub struct ValueSlot<'a> {
    visit: &'a mut Visit<'a>,
}

/// Builds the value from an erased deserializer.
pub(super) type Visit<'a> =
    dyn FnMut(&mut dyn erased_serde::Deserializer<'_>) -> Result<(), erased_serde::Error> + 'a;

impl<'a> ValueSlot<'a> {
    pub(super) fn new(visit: &'a mut Visit<'a>) -> Self {
        Self { visit }
    }

    /// Build the value with this deserializer (for example
    /// `&mut serde_json::Deserializer::from_slice(bytes)`).
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(self, de: D) -> Result<(), BoxError> {
        let mut erased = <dyn erased_serde::Deserializer<'de>>::erase(de);
        (self.visit)(&mut erased).map_err(Into::into)
    }

    /// Build the value with a deserializer already erased.
    pub fn deserialize_erased(
        self,
        de: &mut dyn erased_serde::Deserializer<'_>,
    ) -> Result<(), erased_serde::Error> {
        (self.visit)(de)
    }
}

impl std::fmt::Debug for ValueSlot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ValueSlot")
    }
}
