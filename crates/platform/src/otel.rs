//! OpenTelemetry traces: one span per hop a request takes — every RPC served
//! or called, every event published and every event handled — sent over
//! OTLP/gRPC when `traces.otlp_endpoint` is set, and not made at all otherwise.
//!
//! The `traceparent` selfhelp already carries (gRPC metadata, NATS headers,
//! the outbox) is each hop's own span: [`hop`] starts the span under the
//! incoming parent and returns the `traceparent` to send on, so the spans of
//! one request join up into one trace across the services.

use std::sync::OnceLock;

use opentelemetry::trace::{
    Span as _, SpanContext, SpanKind, Status, TraceContextExt, TraceFlags, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};

use crate::config::TracesConfig;
use crate::trace::TraceParent;

static TRACER: OnceLock<(SdkTracerProvider, Tracer)> = OnceLock::new();

/// Sends spans to `cfg.otlp_endpoint`, naming them as `service`'s (call within
/// the tokio runtime; once per process). Nothing when no endpoint is set.
pub fn init(cfg: &TracesConfig, service: &str) -> anyhow::Result<()> {
    if cfg.otlp_endpoint.trim().is_empty() || TRACER.get().is_some() {
        return Ok(());
    }
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(cfg.otlp_endpoint.trim())
        .build()
        .map_err(|e| anyhow::anyhow!("traces.otlp_endpoint {}: {e}", cfg.otlp_endpoint))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service.to_string())
                .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        )
        .build();
    let tracer = provider.tracer("selfhelp");
    let _ = TRACER.set((provider, tracer));
    tracing::info!(endpoint = %cfg.otlp_endpoint, "traces sent over OTLP");
    Ok(())
}

/// Sends what is still buffered (at exit). Blocks: call off the runtime's
/// threads (e.g. in `spawn_blocking`).
pub fn shutdown() {
    if let Some((provider, _)) = TRACER.get()
        && let Err(e) = provider.shutdown()
    {
        tracing::warn!(error = %e, "traces not all sent at exit");
    }
}

/// Whether spans are made and sent (an endpoint is set).
pub fn enabled() -> bool {
    TRACER.get().is_some()
}

/// One hop's span; it ends when dropped.
pub struct Hop {
    span: Option<opentelemetry_sdk::trace::Span>,
}

impl Hop {
    /// Marks the hop failed, with why.
    pub fn fail(&mut self, why: impl Into<String>) {
        if let Some(span) = &mut self.span {
            span.set_status(Status::error(why.into()));
        }
    }

    pub fn attribute(&mut self, key: &'static str, value: impl Into<opentelemetry::Value>) {
        if let Some(span) = &mut self.span {
            span.set_attribute(KeyValue::new(key, value));
        }
    }
}

impl Drop for Hop {
    fn drop(&mut self) {
        if let Some(span) = &mut self.span {
            span.end();
        }
    }
}

/// Starts the span of one hop under `parent` (the `traceparent` that came
/// with the call or event; `None` starts a trace) and returns the
/// `traceparent` of this hop, to pass on to what it causes.
pub fn hop(
    name: impl Into<std::borrow::Cow<'static, str>>,
    kind: SpanKind,
    parent: Option<&TraceParent>,
    attributes: Vec<KeyValue>,
) -> (TraceParent, Hop) {
    let name = name.into();
    let tracer = TRACER.get().map(|(_, tracer)| tracer);
    let Some(tracer) = tracer.filter(|_| !name_is_noise(&name)) else {
        let here = parent.map_or_else(TraceParent::new_root, TraceParent::child);
        return (here, Hop { span: None });
    };
    let context = match parent {
        Some(p) => Context::new().with_remote_span_context(SpanContext::new(
            opentelemetry::TraceId::from_bytes(p.trace_id),
            opentelemetry::SpanId::from_bytes(p.span_id),
            if p.sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            true,
            TraceState::default(),
        )),
        None => Context::new(),
    };
    let span = tracer
        .span_builder(name)
        .with_kind(kind)
        .with_attributes(attributes)
        .start_with_context(tracer, &context);
    let here = span.span_context();
    let traceparent = TraceParent {
        trace_id: here.trace_id().to_bytes(),
        span_id: here.span_id().to_bytes(),
        sampled: here.is_sampled(),
    };
    (traceparent, Hop { span: Some(span) })
}

/// Health checks and reflection: every probe would be a trace of its own.
fn name_is_noise(name: &str) -> bool {
    name.starts_with("grpc.health.") || name.starts_with("grpc.reflection.")
}

/// The attributes of an RPC's span, from its path (`/package.Service/Method`).
pub fn rpc_attributes(path: &str) -> Vec<KeyValue> {
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or(("", path));
    vec![
        KeyValue::new("rpc.system", "grpc"),
        KeyValue::new("rpc.service", service.to_string()),
        KeyValue::new("rpc.method", method.to_string()),
    ]
}
