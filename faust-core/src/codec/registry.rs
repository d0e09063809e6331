//! An app's codecs and transforms by name (Faust's codec registry): the
//! built-ins, plus those registered with
//! [`AppBuilder::codec`](crate::AppBuilder::codec) and
//! [`AppBuilder::transform`](crate::AppBuilder::transform).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use super::{Base, Binary, Chain, Codec, CodecRef, Inner, Transform};
use crate::error::{Error, Result};

/// See the [module documentation](self).
#[derive(Clone)]
pub(crate) struct Registry {
    codecs: BTreeMap<Arc<str>, Base>,
    transforms: BTreeMap<Arc<str>, Arc<dyn Transform>>,
    /// Registrations refused (reported by `check`, when the app is built).
    refused: Vec<String>,
}

impl Default for Registry {
    fn default() -> Self {
        let codecs = [
            ("json", Base::Json),
            ("bincode", Base::Bincode),
            ("raw", Base::Raw),
        ];
        let transforms: [(&str, Arc<dyn Transform>); 1] = [("binary", Arc::new(Binary))];
        Self {
            codecs: codecs.into_iter().map(|(n, c)| (n.into(), c)).collect(),
            transforms: transforms.into_iter().map(|(n, t)| (n.into(), t)).collect(),
            refused: Vec::new(),
        }
    }
}

impl Registry {
    /// The built-ins only.
    pub(crate) fn builtins() -> &'static Registry {
        static BUILTINS: OnceLock<Registry> = OnceLock::new();
        BUILTINS.get_or_init(Registry::default)
    }

    /// Why `name` cannot be registered, if it cannot.
    fn refuse(&self, name: &str) -> Option<String> {
        if name.is_empty() || name.contains('|') || name.contains(char::is_whitespace) {
            return Some(format!(
                "codec name {name:?} must be non-empty, without `|` or spaces"
            ));
        }
        let builtin =
            super::BUILTIN_CODECS.contains(&name) || super::BUILTIN_TRANSFORMS.contains(&name);
        builtin.then(|| format!("codec name `{name}` is built in; register yours under another"))
    }

    /// Register a codec (a later one of the same name replaces it).
    pub(crate) fn add_codec(&mut self, name: &str, codec: impl Codec) {
        match self.refuse(name) {
            Some(why) => self.refused.push(why),
            None => {
                self.transforms.remove(name);
                self.codecs.insert(name.into(), Base::of(codec));
            }
        }
    }

    /// Register a transform (a later one of the same name replaces it).
    pub(crate) fn add_transform(&mut self, name: &str, transform: impl Transform) {
        match self.refuse(name) {
            Some(why) => self.refused.push(why),
            None => {
                self.codecs.remove(name);
                self.transforms.insert(name.into(), Arc::new(transform));
            }
        }
    }

    /// Whether every registration was accepted.
    pub(crate) fn check(&self) -> Result<()> {
        match self.refused.first() {
            Some(why) => Err(Error::config(why.clone())),
            None => Ok(()),
        }
    }

    /// `codec` with its name looked up here, if it is a name.
    pub(crate) fn resolve(&self, codec: &CodecRef) -> Result<CodecRef> {
        match &codec.0 {
            Inner::Named(name) => self.parse(name),
            _ => Ok(codec.clone()),
        }
    }

    /// A codec name or chain: `json`, `json|binary`, `binary` (raw, then
    /// base64), `msgpack|zstd`.
    pub(crate) fn parse(&self, chain: &str) -> Result<CodecRef> {
        let names: Vec<&str> = chain.split('|').map(str::trim).collect();
        let mut transforms = Vec::new();
        let base = match self.codecs.get(names[0]) {
            Some(base) => base.clone(),
            None => {
                // A chain that starts with a transform reads raw bytes.
                let transform = self.transform(names[0], chain)?;
                transforms.push(transform);
                Base::Raw
            }
        };
        for name in &names[1..] {
            if self.codecs.contains_key(*name) {
                return Err(Error::config(format!(
                    "codec `{name}` in `{chain}` must come first: a chain is a codec, \
                     then transforms ({})",
                    self.transform_names()
                )));
            }
            transforms.push(self.transform(name, chain)?);
        }
        let name: Arc<str> = names.join("|").into();
        if transforms.is_empty() {
            return Ok(CodecRef::from_base(name, base));
        }
        Ok(CodecRef(Inner::Chain(Arc::new(Chain {
            name,
            base,
            transforms,
        }))))
    }

    fn transform(&self, name: &str, chain: &str) -> Result<(Arc<str>, Arc<dyn Transform>)> {
        match self.transforms.get_key_value(name) {
            Some((name, transform)) => Ok((name.clone(), transform.clone())),
            None => Err(self.unknown(name, chain)),
        }
    }

    fn transform_names(&self) -> String {
        let names: Vec<&str> = self.transforms.keys().map(|n| &**n).collect();
        names.join(", ")
    }

    /// The error for an unknown name, listing the known ones.
    pub(crate) fn unknown(&self, name: &str, chain: &str) -> Error {
        let within = if name == chain {
            String::new()
        } else {
            format!(" in `{chain}`")
        };
        let codecs: Vec<&str> = self.codecs.keys().map(|n| &**n).collect();
        Error::config(format!(
            "unknown codec `{name}`{within}; known codecs: {}; transforms: {} \
             (register others with `AppBuilder::codec` or `AppBuilder::transform`)",
            codecs.join(", "),
            self.transform_names()
        ))
    }
}
