//! OpenTelemetry traces across the three service binaries: an OTLP/gRPC
//! receiver runs inside this test, the services send it their spans, and an
//! operator's approval of a listing — the RPC at listings, the event it
//! publishes, membership and notifications handling it, the organiser's
//! notification — arrives as one whole trace.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use selfhelp_e2e::{Trio, notified, service_env, submit_and_approve};
use selfhelp_proto::listings::v1 as lpb;
use selfhelp_proto::listings::v1::listings_service_client::ListingsServiceClient;
use selfhelp_proto::notifications::v1::NotificationKind;
use selfhelp_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use selfhelp_testkit::{Backend, Nats, TestDb, channel, eventually, token, with_token};

const REGION: &str = "notts";

/// A span as received, with the service that sent it.
#[derive(Clone, Debug)]
struct Received {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
}

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s),
                    ) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push(Received {
                        service: service.clone(),
                        name: span.name,
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    /// Serves OTLP/gRPC on a port the system picks; returns its URL.
    async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        format!("http://{addr}")
    }

    fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn an_approval_its_event_and_the_notifications_it_causes_are_one_trace() {
    let collector = Collector::default();
    let endpoint = collector.serve().await;
    let nats = Nats::start();
    let dbs = [
        TestDb::new(Backend::Sqlite).await,
        TestDb::new(Backend::Sqlite).await,
        TestDb::new(Backend::Sqlite).await,
    ];
    let trio = Trio::start(&dbs, |_, db, listings_url| {
        let mut env = service_env(REGION, &db.url, &nats.url(), listings_url);
        env.push(("SELFHELP_TRACES__OTLP_ENDPOINT", endpoint.clone()));
        // Batches go out every 200 ms instead of every 5 s.
        env.push(("OTEL_BSP_SCHEDULE_DELAY", "200".to_string()));
        env
    })
    .await;

    let mut listings = ListingsServiceClient::new(channel(trio.listings.addr).await);
    let olive = token("olive", REGION, &[]);
    let group = listings
        .create_group(with_token(
            lpb::CreateGroupRequest {
                name: "Traced group".into(),
                topics: vec!["bereavement".into()],
                format: lpb::MeetingFormat::Online.into(),
                join_policy: lpb::JoinPolicy::Open.into(),
                ..Default::default()
            },
            &olive,
        ))
        .await
        .unwrap()
        .into_inner();
    // The approval comes with no traceparent: its trace starts at listings.
    submit_and_approve(&mut listings, REGION, &group.id, &olive).await;
    let notifications = NotificationsServiceClient::new(channel(trio.notifications.addr).await);
    notified(
        &notifications,
        REGION,
        "olive",
        NotificationKind::GroupListed,
    )
    .await;

    let published = "org.selfhelp.listings.group.published.v1";
    let trace = eventually(
        "the approval's trace, whole",
        Duration::from_secs(30),
        || {
            let spans = collector.spans();
            async move {
                let root = spans
                    .iter()
                    .find(|s| s.name == "selfhelp.listings.v1.ListingsService/ReviewGroup")?;
                let trace: Vec<Received> = spans
                    .iter()
                    .filter(|s| s.trace_id == root.trace_id)
                    .cloned()
                    .collect();
                let processed_by = |service: &str| {
                    trace
                        .iter()
                        .any(|s| s.service == service && s.name == format!("process {published}"))
                };
                // Each service sends on its own timer: wait for every span a
                // parent names.
                let whole = trace.iter().all(|s| {
                    s.parent_span_id.is_empty()
                        || trace.iter().any(|p| p.span_id == s.parent_span_id)
                });
                (whole
                    && processed_by("selfhelp-membership")
                    && processed_by("selfhelp-notifications"))
                .then_some(trace)
            }
        },
    )
    .await;
    for s in &trace {
        eprintln!(
            "{:24} {:70} parent {}",
            s.service,
            s.name,
            hex(&s.parent_span_id)
        );
    }

    // One root, the RPC at listings; every other span's parent is in the trace.
    let roots: Vec<_> = trace
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "{roots:?}");
    assert_eq!(roots[0].service, "selfhelp-listings");
    assert_eq!(
        roots[0].name,
        "selfhelp.listings.v1.ListingsService/ReviewGroup"
    );
    for s in &trace {
        assert!(
            s.parent_span_id.is_empty() || trace.iter().any(|p| p.span_id == s.parent_span_id),
            "{} of {} has a parent outside the trace",
            s.name,
            s.service
        );
    }
    // RPC → publish (listings) → process (membership, notifications).
    let publish = trace
        .iter()
        .find(|s| s.name == format!("publish {published}"))
        .expect("the event's publishing is in the trace");
    assert_eq!(publish.service, "selfhelp-listings");
    assert_eq!(publish.parent_span_id, roots[0].span_id);
    for service in ["selfhelp-membership", "selfhelp-notifications"] {
        let process = trace
            .iter()
            .find(|s| s.service == service && s.name == format!("process {published}"))
            .unwrap();
        assert_eq!(
            process.parent_span_id, publish.span_id,
            "{service} handled the event under its publishing"
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
