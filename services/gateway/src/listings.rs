//! The gateway's view of listings: its public RPCs, each with a deadline, and
//! its health. Nothing here carries a token: everything the gateway shows is
//! what a stranger may see.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use selfhelp_proto::listings::v1 as pb;
use selfhelp_proto::listings::v1::listings_service_client::ListingsServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::config::Config;
use crate::error::GatewayError;

/// The largest answer taken from listings (tonic's default is 4 MiB).
const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// Listings' readiness entry (its gRPC service name).
const LISTINGS_SERVICE: &str = "selfhelp.listings.v1.ListingsService";

/// For a lookup by a name in the URL (an id, a topic code): a malformed or
/// hidden one is a page that does not exist, not the visitor's mistake.
fn nothing_by_that_name(status: tonic::Status) -> GatewayError {
    match status.code() {
        tonic::Code::InvalidArgument | tonic::Code::PermissionDenied => GatewayError::NotFound,
        _ => GatewayError::from(status),
    }
}

/// How long the topic list is kept before listings is asked again. Nearly
/// every page shows topics and they seldom change; a renamed topic reaches the
/// pages within this (browsers keep pages for 60 s anyway).
const TOPICS_KEPT_FOR: Duration = Duration::from_secs(30);

/// Puts the `traceparent` of the request being answered on each call, so that
/// listings' logs and spans join the gateway's.
fn with_trace(mut call: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    if let Some(value) = crate::observe::current_trace().and_then(|t| t.to_string().parse().ok()) {
        call.metadata_mut()
            .insert(selfhelp_platform::trace::HEADER, value);
    }
    Ok(call)
}

type Traced = fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>;

/// What [`with_trace`] makes of a call here and now (for tests).
#[cfg(test)]
pub(crate) fn traced_call() -> tonic::Request<()> {
    with_trace(tonic::Request::new(())).expect("never refuses")
}

#[derive(Clone)]
pub(crate) struct Listings {
    client: ListingsServiceClient<InterceptedService<Channel, Traced>>,
    health: HealthClient<Channel>,
    topics: Arc<Mutex<Option<KeptTopics>>>,
}

/// The topic list and when it was asked for.
type KeptTopics = (Instant, Arc<Vec<pb::Topic>>);

impl Listings {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let timeout = Duration::from_millis(config.listings_timeout_ms);
        // Lazy: the gateway may start before listings; each call has a deadline.
        let channel = selfhelp_platform::tls::endpoint(
            "listings",
            &config.listings_url,
            &config.listings_tls,
        )?
        .connect_timeout(timeout)
        .timeout(timeout)
        .tcp_nodelay(true)
        .connect_lazy();
        Ok(Self {
            // A region's calendar feed can be a few megabytes.
            client: ListingsServiceClient::with_interceptor(channel.clone(), with_trace as Traced)
                .max_decoding_message_size(MAX_ANSWER_BYTES),
            health: HealthClient::new(channel),
            topics: Arc::default(),
        })
    }

    pub async fn ready(&self) -> bool {
        let request = HealthCheckRequest {
            service: LISTINGS_SERVICE.into(),
        };
        matches!(
            self.health.clone().check(request).await,
            Ok(r) if r.get_ref().status == ServingStatus::Serving as i32
        )
    }

    pub async fn search(
        &self,
        request: pb::SearchGroupsRequest,
    ) -> Result<pb::SearchGroupsResponse, GatewayError> {
        Ok(self
            .client
            .clone()
            .search_groups(request)
            .await?
            .into_inner())
    }

    /// A published group or a listed proposal; anything else is "not found"
    /// to a stranger.
    pub async fn group(&self, id: &str) -> Result<pb::Group, GatewayError> {
        let group = self
            .client
            .clone()
            .get_group(pb::GetGroupRequest {
                group_id: id.to_string(),
            })
            .await
            .map_err(nothing_by_that_name)?
            .into_inner();
        let public = [pb::GroupStatus::Published, pb::GroupStatus::ProposalListed];
        if !public.iter().any(|s| group.status == *s as i32) {
            return Err(GatewayError::NotFound);
        }
        Ok(group)
    }

    /// Groups being started (reviewed proposals), newest first.
    pub async fn proposed(
        &self,
        page: selfhelp_proto::common::v1::PageRequest,
    ) -> Result<pb::ListProposedGroupsResponse, GatewayError> {
        Ok(self
            .client
            .clone()
            .list_proposed_groups(pb::ListProposedGroupsRequest { page: Some(page) })
            .await?
            .into_inner())
    }

    /// The current topics, kept for [`TOPICS_KEPT_FOR`].
    pub async fn topics(&self) -> Result<Arc<Vec<pb::Topic>>, GatewayError> {
        if let Some((at, topics)) = self.topics.lock().expect("topics lock").as_ref()
            && at.elapsed() < TOPICS_KEPT_FOR
        {
            return Ok(topics.clone());
        }
        let topics = Arc::new(
            self.client
                .clone()
                .list_topics(pb::ListTopicsRequest {
                    include_retired: false,
                })
                .await?
                .into_inner()
                .topics,
        );
        *self.topics.lock().expect("topics lock") = Some((Instant::now(), topics.clone()));
        Ok(topics)
    }

    /// Drops the kept topics: staff changed them here, and their next page
    /// shows the change.
    pub fn forget_topics(&self) {
        *self.topics.lock().expect("topics lock") = None;
    }

    pub async fn calendar(&self, id: &str) -> Result<String, GatewayError> {
        // Only published groups meet, so only they have a feed.
        if self.group(id).await?.status != pb::GroupStatus::Published as i32 {
            return Err(GatewayError::NotFound);
        }
        Ok(self
            .client
            .clone()
            .export_group_calendar(pb::ExportGroupCalendarRequest {
                group_id: id.to_string(),
            })
            .await?
            .into_inner()
            .ics)
    }

    /// The region's feed (no topic) or a topic's.
    pub async fn directory_calendar(&self, topic: &str) -> Result<String, GatewayError> {
        Ok(self
            .client
            .clone()
            .export_directory_calendar(pb::ExportDirectoryCalendarRequest {
                topic: topic.to_string(),
                group_ids: Vec::new(),
            })
            .await
            .map_err(nothing_by_that_name)?
            .into_inner()
            .ics)
    }

    pub async fn oruk_search(
        &self,
        request: pb::SearchOpenReferralRequest,
    ) -> Result<String, GatewayError> {
        Ok(self
            .client
            .clone()
            .search_open_referral(request)
            .await?
            .into_inner()
            .page_json)
    }

    pub async fn oruk_service(
        &self,
        request: pb::GetOpenReferralServiceRequest,
    ) -> Result<String, GatewayError> {
        Ok(self
            .client
            .clone()
            .get_open_referral_service(request)
            .await
            .map_err(nothing_by_that_name)?
            .into_inner()
            .service_json)
    }

    /// The taxonomy document and its current terms.
    pub async fn oruk_taxonomy(
        &self,
    ) -> Result<(serde_json::Value, Vec<serde_json::Value>), GatewayError> {
        let answer = self
            .client
            .clone()
            .export_open_referral_taxonomy(pb::ExportOpenReferralTaxonomyRequest {})
            .await?
            .into_inner();
        fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, GatewayError> {
            serde_json::from_str(text).map_err(|e| {
                GatewayError::Upstream(tonic::Status::internal(format!(
                    "listings sent taxonomy JSON that does not parse: {e}"
                )))
            })
        }
        Ok((
            parse(&answer.taxonomy_json)?,
            parse(&answer.taxonomy_terms_json)?,
        ))
    }
}
