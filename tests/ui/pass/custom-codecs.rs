use faust::codec::{erased_serde, BoxError, Codec, ValueSlot};
use faust::{agent, CodecRef, Stream};

/// JSON under another name.
struct Plain;

impl Codec for Plain {
    fn encode(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, BoxError> {
        Ok(serde_json::to_vec(value)?)
    }
    fn decode(&self, bytes: &[u8], out: ValueSlot<'_>) -> Result<(), BoxError> {
        out.deserialize(&mut serde_json::Deserializer::from_slice(bytes))
    }
}

#[agent(codec = "json|binary", key_codec = "binary")]
async fn chained(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

#[agent(codec = Plain, key_codec = faust::codec::Json)]
async fn by_value(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

#[agent(codec = CodecRef::named("msgpack"), key_codec = binary)]
async fn by_name(_s: Stream<i64>) -> faust::Result<()> {
    Ok(())
}

fn main() {}
