//! The services as the signed-in person: each call carries a short-lived
//! token the gateway signs for them (`keys`), and the request's trace.

use std::time::Duration;

use selfhelp_proto::common::v1::PageRequest;
use selfhelp_proto::listings::v1::listings_service_client::ListingsServiceClient;
use selfhelp_proto::membership::v1 as mpb;
use selfhelp_proto::membership::v1::membership_service_client::MembershipServiceClient;
use selfhelp_proto::notifications::v1 as npb;
use selfhelp_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use selfhelp_proto::operations::v1::operations_service_client::OperationsServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::error::GatewayError;
use crate::sessions::Signed;

use crate::config::Config;
use crate::keys::Keys;

/// The role a token carries only for the call that tells notifications an
/// address was confirmed by signing in with it.
pub const ROLE_SIGNED_IN_BY_EMAIL: &str = "signed-in-by-email";

#[derive(Clone)]
pub struct Services {
    keys: Keys,
    pub membership: MembershipServiceClient<Channel>,
    pub notifications: NotificationsServiceClient<Channel>,
    /// Listings as a person (what they hold about them); the public pages
    /// read listings through `Listings` instead.
    pub listings: ListingsServiceClient<Channel>,
    /// Each service's operations API (dead letters), by service name, on the
    /// same connections.
    pub operations: Vec<(&'static str, OperationsServiceClient<Channel>)>,
}

impl Services {
    pub fn new(config: &Config, keys: Keys) -> anyhow::Result<Services> {
        let timeout = Duration::from_millis(config.listings_timeout_ms);
        let channel = |name: &str, url: &str| {
            Ok::<_, anyhow::Error>(
                selfhelp_platform::tls::endpoint(name, url, &config.listings_tls)?
                    .connect_timeout(timeout)
                    .timeout(timeout)
                    .tcp_nodelay(true)
                    .connect_lazy(),
            )
        };
        let listings = channel("listings", &config.listings_url)?;
        let membership = channel("membership", &config.membership_url)?;
        let notifications = channel("notifications", &config.notifications_url)?;
        Ok(Services {
            keys,
            operations: vec![
                ("listings", OperationsServiceClient::new(listings.clone())),
                (
                    "membership",
                    OperationsServiceClient::new(membership.clone()),
                ),
                (
                    "notifications",
                    OperationsServiceClient::new(notifications.clone()),
                ),
            ],
            membership: MembershipServiceClient::new(membership),
            notifications: NotificationsServiceClient::new(notifications),
            listings: ListingsServiceClient::new(listings),
        })
    }

    /// Calls made as `person` (with `roles`): one token, signed now, for
    /// every call of the page being made.
    pub async fn as_person(
        &self,
        person: &str,
        roles: &[String],
    ) -> Result<AsPerson, GatewayError> {
        let token = self
            .keys
            .token(person, roles)
            .await
            .map_err(|e| GatewayError::Internal(format!("signing a token: {e:#}")))?;
        let authorization = format!("Bearer {token}")
            .parse()
            .map_err(|e| GatewayError::Internal(format!("a token as a header: {e}")))?;
        let trace = crate::observe::current_trace().and_then(|t| t.to_string().parse().ok());
        Ok(AsPerson {
            person_id: person.to_string(),
            authorization,
            trace,
            membership: self.membership.clone(),
            notifications: self.notifications.clone(),
            listings: self.listings.clone(),
        })
    }

    /// Calls made as the signed-in person.
    pub async fn as_signed(&self, signed: &Signed) -> Result<AsPerson, GatewayError> {
        self.as_person(&signed.person_id, &signed.roles).await
    }

    /// Tells notifications that `person` has just signed in with `email`, so
    /// the address counts as confirmed for the emails it sends them.
    pub async fn address_confirmed(&self, person: &str, email: &str) -> Result<(), GatewayError> {
        let mut call = self
            .as_person(person, &[ROLE_SIGNED_IN_BY_EMAIL.to_string()])
            .await?;
        let request = call.ask(npb::ConfirmSignInAddressRequest {
            email: email.to_string(),
        });
        call.notifications.confirm_sign_in_address(request).await?;
        Ok(())
    }
}

/// The services, called as one person.
pub struct AsPerson {
    /// Whom the calls are made as.
    pub person_id: String,
    authorization: MetadataValue<Ascii>,
    trace: Option<MetadataValue<Ascii>>,
    pub membership: MembershipServiceClient<Channel>,
    pub notifications: NotificationsServiceClient<Channel>,
    pub listings: ListingsServiceClient<Channel>,
}

impl AsPerson {
    /// `message` as a request of this person's, carrying the page's trace.
    pub fn ask<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        metadata.insert("authorization", self.authorization.clone());
        if let Some(trace) = &self.trace {
            metadata.insert(selfhelp_platform::trace::HEADER, trace.clone());
        }
        request
    }
}

/// The most of one person's memberships or follows a page reads (five pages
/// of the services' largest).
const MOST_LISTED: usize = 500;

impl AsPerson {
    /// Every membership of the person, in any state, page after page.
    pub async fn my_memberships(&self) -> Result<Vec<mpb::Membership>, GatewayError> {
        let mut membership = self.membership.clone();
        let mut all = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = self.ask(mpb::ListMyMembershipsRequest {
                page: Some(PageRequest {
                    page_size: 100,
                    page_token,
                }),
            });
            let answer = membership.list_my_memberships(request).await?.into_inner();
            all.extend(answer.memberships);
            page_token = answer.page.map(|p| p.next_page_token).unwrap_or_default();
            if page_token.is_empty() || all.len() >= MOST_LISTED {
                return Ok(all);
            }
        }
    }

    /// Every group the person follows, page after page.
    pub async fn my_follows(&self) -> Result<Vec<mpb::Follow>, GatewayError> {
        let mut membership = self.membership.clone();
        let mut all = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = self.ask(mpb::ListMyFollowsRequest {
                page: Some(PageRequest {
                    page_size: 100,
                    page_token,
                }),
            });
            let answer = membership.list_my_follows(request).await?.into_inner();
            all.extend(answer.follows);
            page_token = answer.page.map(|p| p.next_page_token).unwrap_or_default();
            if page_token.is_empty() || all.len() >= MOST_LISTED {
                return Ok(all);
            }
        }
    }
}
