//! W3C Trace Context (`traceparent`) carried through gRPC metadata and NATS headers,
//! so one request can be followed across services in the logs.

use std::fmt;

use rand::RngCore;

pub const HEADER: &str = "traceparent";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

impl TraceParent {
    /// Starts a new trace.
    pub fn new_root() -> Self {
        let mut rng = rand::rng();
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        rng.fill_bytes(&mut trace_id);
        rng.fill_bytes(&mut span_id);
        Self {
            trace_id,
            span_id,
            sampled: true,
        }
    }

    /// Same trace, new span: what this process does on behalf of the caller.
    pub fn child(&self) -> Self {
        let mut span_id = [0u8; 8];
        rand::rng().fill_bytes(&mut span_id);
        Self {
            trace_id: self.trace_id,
            span_id,
            sampled: self.sampled,
        }
    }

    /// Parses a version-00 `traceparent`; anything malformed is ignored by callers.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let span = parts.next()?;
        let flags = parts.next()?;
        if version != "00" || parts.next().is_some() {
            return None;
        }
        let trace_id: [u8; 16] = decode_hex(trace)?.try_into().ok()?;
        let span_id: [u8; 8] = decode_hex(span)?.try_into().ok()?;
        let flags = decode_hex(flags)?;
        if flags.len() != 1 || trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            sampled: flags[0] & 1 == 1,
        })
    }

    pub fn trace_id_hex(&self) -> String {
        encode_hex(&self.trace_id)
    }

    /// The trace of handling an event whose `traceparent` is `value`: the
    /// consumer gives each event the span of its handling before the handler
    /// sees it, so what the handler writes is caused by that span.
    pub fn of_event(value: Option<&str>) -> Self {
        value.and_then(Self::parse).unwrap_or_else(Self::new_root)
    }

    /// Continues the trace found in `value`, or starts a new one.
    pub fn continue_or_start(value: Option<&str>) -> Self {
        value
            .and_then(Self::parse)
            .map(|parent| parent.child())
            .unwrap_or_else(Self::new_root)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            encode_hex(&self.trace_id),
            encode_hex(&self.span_id),
            u8::from(self.sampled)
        )
    }
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_trace_in_children() {
        let root = TraceParent::new_root();
        let parsed = TraceParent::parse(&root.to_string()).unwrap();
        assert_eq!(parsed, root);
        let child = root.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.span_id, root.span_id);
    }

    #[test]
    fn rejects_malformed_values() {
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01",
        ] {
            assert!(TraceParent::parse(bad).is_none(), "{bad}");
        }
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(TraceParent::parse(ok).unwrap().to_string(), ok);
    }
}
