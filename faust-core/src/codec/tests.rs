use super::*;

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Order {
    id: u32,
    item: String,
}

fn order() -> Order {
    Order {
        id: 1,
        item: "tea".into(),
    }
}

#[test]
fn json_round_trip() {
    let bytes = CodecRef::JSON.encode(&order()).unwrap();
    assert_eq!(bytes, br#"{"id":1,"item":"tea"}"#);
    assert_eq!(CodecRef::JSON.decode::<Order>(&bytes).unwrap(), order());
    let slab = CodecRef::JSON.encode_bytes(&order()).unwrap();
    assert_eq!(&slab[..], &bytes[..]);
}

#[test]
fn bincode_round_trip() {
    let bytes = CodecRef::BINCODE.encode(&order()).unwrap();
    assert_eq!(CodecRef::BINCODE.decode::<Order>(&bytes).unwrap(), order());
}

#[test]
fn raw_passes_strings_and_bytes_through() {
    assert_eq!(CodecRef::RAW.encode("héllo").unwrap(), "héllo".as_bytes());
    let b = bytes::Bytes::from_static(b"\x00\xff");
    assert_eq!(CodecRef::RAW.encode(&b).unwrap(), b"\x00\xff");
    assert_eq!(CodecRef::RAW.decode::<String>(b"abc").unwrap(), "abc");
    assert_eq!(
        CodecRef::RAW.decode::<bytes::Bytes>(b"\x01\x02").unwrap(),
        bytes::Bytes::from_static(b"\x01\x02")
    );
}

#[test]
fn raw_rejects_structured_values_with_a_clear_error() {
    let err = CodecRef::RAW.encode(&5u32).unwrap_err().to_string();
    assert!(err.contains("only takes bytes or strings"), "{err}");
    let err = CodecRef::RAW.decode::<Order>(b"x").unwrap_err().to_string();
    assert!(err.contains("raw"), "{err}");
}

#[test]
fn bad_json_is_a_decode_error() {
    let err = CodecRef::JSON.decode::<Order>(b"{not json").unwrap_err();
    assert!(matches!(err, Error::DecodeValue { ref codec, .. } if codec == "json"));
}

#[test]
fn codec_names_parse() {
    assert_eq!("bincode".parse::<CodecRef>().unwrap(), CodecRef::BINCODE);
    let err = "yaml".parse::<CodecRef>().unwrap_err().to_string();
    assert!(err.contains("unknown codec `yaml`"), "{err}");
    assert!(
        err.contains("bincode, json, raw; transforms: binary"),
        "{err}"
    );
}

#[test]
fn values_and_names_agree() {
    assert_eq!(CodecRef::from(Json), CodecRef::JSON);
    assert_eq!(CodecRef::from(Bincode), "bincode");
    assert_eq!(CodecRef::from(Raw), "raw");
    assert_eq!(CodecRef::from(Binary), "binary");
    assert_eq!(CodecRef::from("json"), CodecRef::JSON);
    assert!(matches!(CodecRef::from(Json).0, Inner::Json));
    assert!(matches!(CodecRef::from("raw").0, Inner::Raw));
    assert!(!CodecRef::from("msgpack").is_resolved());
    assert_eq!(CodecRef::from(" json | binary ").name(), "json|binary");
}

#[test]
fn json_then_binary_is_base64_of_json() {
    let codec = CodecRef::from("json|binary");
    let bytes = codec.encode(&order()).unwrap();
    use base64::Engine as _;
    let json = base64::engine::general_purpose::STANDARD
        .decode(&bytes)
        .unwrap();
    assert_eq!(json, br#"{"id":1,"item":"tea"}"#);
    assert_eq!(codec.decode::<Order>(&bytes).unwrap(), order());
    assert_eq!(codec.encode_bytes(&order()).unwrap(), bytes);
}

#[test]
fn binary_alone_is_base64_of_raw_bytes() {
    let codec = CodecRef::from("binary");
    assert_eq!(codec.encode("hi").unwrap(), b"aGk=");
    assert_eq!(codec.decode::<String>(b"aGk=").unwrap(), "hi");
    let err = codec.decode::<String>(b"!!").unwrap_err();
    assert!(
        matches!(&err, Error::DecodeValue { codec, reason } if codec == "binary" && reason.starts_with("binary: ")),
        "{err}"
    );
}

#[test]
fn a_codec_must_head_its_chain() {
    let err = "binary|json".parse::<CodecRef>().unwrap_err().to_string();
    assert!(err.contains("must come first"), "{err}");
    let err = "json|zstd".parse::<CodecRef>().unwrap_err().to_string();
    assert!(err.contains("unknown codec `zstd` in `json|zstd`"), "{err}");
}

/// Upper-cases strings on the way out, lower-cases them on the way in.
struct Upper;

impl Codec for Upper {
    fn encode(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, BoxError> {
        let s: String = serde_json::from_value(serde_json::to_value(value)?)?;
        Ok(s.to_uppercase().into_bytes())
    }
    fn decode(&self, bytes: &[u8], out: ValueSlot<'_>) -> Result<(), BoxError> {
        let s = std::str::from_utf8(bytes)?.to_lowercase();
        out.deserialize(serde::de::value::StringDeserializer::<serde_json::Error>::new(s))
    }
}

#[test]
fn a_user_codec_round_trips_and_is_named_after_its_type() {
    let codec = CodecRef::from(Upper);
    assert_eq!(codec.name(), "Upper");
    assert_eq!(codec.encode("abc").unwrap(), b"ABC");
    assert_eq!(codec.decode::<String>(b"ABC").unwrap(), "abc");
    let err = codec.encode(&1).unwrap_err();
    assert!(
        matches!(&err, Error::Encode { codec, .. } if codec == "Upper"),
        "{err}"
    );
}

#[test]
fn the_erased_built_ins_match_the_direct_ones() {
    struct Wrap<C>(C);
    impl<C: Codec> Codec for Wrap<C> {
        fn encode(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, BoxError> {
            self.0.encode(value)
        }
        fn decode(&self, bytes: &[u8], out: ValueSlot<'_>) -> Result<(), BoxError> {
            self.0.decode(bytes, out)
        }
    }
    for (direct, wrapped) in [
        (CodecRef::JSON, CodecRef::from(Wrap(Json))),
        (CodecRef::BINCODE, CodecRef::from(Wrap(Bincode))),
    ] {
        let bytes = direct.encode(&order()).unwrap();
        assert_eq!(wrapped.encode(&order()).unwrap(), bytes);
        assert_eq!(wrapped.decode::<Order>(&bytes).unwrap(), order());
    }
    let raw = CodecRef::from(Wrap(Raw));
    assert_eq!(raw.encode("x").unwrap(), b"x");
    assert_eq!(raw.decode::<String>(b"x").unwrap(), "x");
    assert_eq!(raw.name(), "Wrap");
}

#[test]
fn the_registry_resolves_registered_names_and_refuses_built_in_ones() {
    let mut reg = Registry::default();
    reg.add_codec("upper", Upper);
    reg.add_transform("reverse", Rev);
    let codec = reg
        .resolve(&CodecRef::from("upper|reverse|binary"))
        .unwrap();
    assert_eq!(codec.name(), "upper|reverse|binary");
    let bytes = codec.encode("ab").unwrap();
    assert_eq!(codec.decode::<String>(&bytes).unwrap(), "ab");
    let err = reg
        .resolve(&CodecRef::from("msgpack"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown codec `msgpack`; known codecs: bincode, json, raw, upper; transforms: binary, reverse"),
        "{err}"
    );
    reg.check().unwrap();
    reg.add_codec("json", Upper);
    reg.add_transform("a|b", Rev);
    assert!(reg
        .check()
        .unwrap_err()
        .to_string()
        .contains("`json` is built in"));

    struct Rev;
    impl Transform for Rev {
        fn encode(&self, mut bytes: Vec<u8>) -> Result<Vec<u8>, BoxError> {
            bytes.reverse();
            Ok(bytes)
        }
        fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>, BoxError> {
            Ok(bytes.iter().rev().copied().collect())
        }
    }
}
