//! The NotificationsService RPCs: a person's own inbox, listed or live (here),
//! their settings (`settings`) and the delivery log (`deliveries`).

mod contact;
mod deliveries;
mod settings;

use sea_orm::DatabaseConnection;
use selfhelp_core::caller::Caller;
use selfhelp_core::postcode::PostcodeTable;
use selfhelp_core::time::{Clock, to_timestamp};
use selfhelp_platform::Shutdown;
use selfhelp_platform::db::Databases;
use selfhelp_platform::grpc::{answer, caller_in_region};

use crate::workflow::Workflow;
use selfhelp_core::validation::{self, Violations};
use selfhelp_proto::common::v1::PageResponse;
use selfhelp_proto::notifications::v1 as pb;
use selfhelp_proto::notifications::v1::notifications_service_server::NotificationsService;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::config::{ContactConfig, WatchConfig, WebhookConfig};
use crate::domain::messages::Kind;
use crate::error::ServiceError;
use crate::live::LiveInbox;
use crate::store::{alert, audience, delivery, digest, notification, preference, webhook};

pub struct NotificationsApi {
    db: DatabaseConnection,
    /// Plain reads (the inbox, unread counts, live streams): never behind a write.
    read: DatabaseConnection,
    region: String,
    /// Ends live streams when the service stops.
    shutdown: Shutdown,
    webhooks: WebhookConfig,
    watch: WatchConfig,
    /// Live streams open on this replica, and their wake-ups.
    live: Arc<LiveInbox>,
    clock: Clock,
    /// What people change themselves, each in its transaction.
    workflow: Workflow,
    /// Places alerts given by postcode.
    postcodes: Arc<PostcodeTable>,
    names: selfhelp_platform::privacy::Pseudonyms,
    timezone: chrono_tz::Tz,
    contact: ContactConfig,
    /// Checks the one-click links of review-due reminders.
    links: crate::links::LinkKey,
}

/// The role only the web gateway's token for opening listing-check links carries.
pub const ROLE_LISTING_CHECK: &str = "listing-check";

/// Notifications sent per look; the next look sends the rest.
const WATCH_BATCH: u64 = 100;

/// What the region's settings give the API.
pub struct Settings {
    pub region: String,
    pub webhooks: WebhookConfig,
    pub watch: WatchConfig,
    pub postcodes: Arc<PostcodeTable>,
    pub clock: Clock,
    /// How erased people are recorded (a relayed message skips them).
    pub names: selfhelp_platform::privacy::Pseudonyms,
    /// The region's time zone (quiet hours of people who set none).
    pub timezone: chrono_tz::Tz,
    pub contact: ContactConfig,
    pub links: crate::links::LinkKey,
}

impl NotificationsApi {
    pub fn new(
        db: Databases,
        settings: Settings,
        shutdown: Shutdown,
        live: Arc<LiveInbox>,
    ) -> Self {
        let Settings {
            region,
            webhooks,
            watch,
            postcodes,
            clock,
            names,
            timezone,
            contact,
            links,
        } = settings;
        Self {
            db: db.write.clone(),
            read: db.read,
            region,
            shutdown,
            webhooks,
            watch,
            live,
            workflow: Workflow {
                db: db.write.clone(),
                clock: clock.clone(),
            },
            postcodes,
            clock,
            names,
            timezone,
            contact,
            links,
        }
    }

    /// The signed-in caller, of this region.
    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, ServiceError> {
        caller_in_region(request, &self.region)
    }
}

const MAX_MARK: usize = 500;

#[tonic::async_trait]
impl NotificationsService for NotificationsApi {
    async fn list_notifications(
        &self,
        request: Request<pb::ListNotificationsRequest>,
    ) -> Result<Response<pb::ListNotificationsResponse>, Status> {
        answer(async {
            let caller = caller_in_region(&request, &self.region)?;
            let req = request.into_inner();
            let page = req.page.unwrap_or_default();
            let mut v = Violations::new();
            let limit = validation::page_size(&mut v, "page.page_size", page.page_size, 20, 100);
            // The token is the id of the last item shown (ids are time-ordered UUIDv7),
            // so new notifications arriving between pages don't shift what follows.
            let before = (!page.page_token.is_empty())
                .then(|| v.uuid("page.page_token", &page.page_token))
                .flatten();
            v.into_result()?;
            let before = before.map(|u| u.to_string());
            let rows = notification::list(
                &self.read,
                &caller.person_id,
                req.unread_only,
                before.as_deref(),
                limit + 1,
            )
            .await?;
            let has_more = rows.len() as u64 > limit;
            let rows: Vec<_> = rows.into_iter().take(limit as usize).collect();
            // A first page that holds everything (most inboxes) counts its own
            // unread: one statement instead of two for each look at the inbox.
            let unread = if before.is_none() && !has_more {
                rows.iter().filter(|r| r.read_at_ms.is_none()).count() as u64
            } else {
                notification::unread_count(&self.read, &caller.person_id).await?
            };
            Ok(pb::ListNotificationsResponse {
                notifications: rows.iter().map(to_wire).collect(),
                unread_count: unread as i64,
                page: Some(PageResponse {
                    next_page_token: if has_more {
                        rows.last().map(|r| r.id.clone()).unwrap_or_default()
                    } else {
                        String::new()
                    },
                    total_size: 0,
                }),
            })
        })
        .await
    }

    async fn get_notification(
        &self,
        request: Request<pb::GetNotificationRequest>,
    ) -> Result<Response<pb::Notification>, Status> {
        answer(async {
            let caller = caller_in_region(&request, &self.region)?;
            let mut v = Violations::new();
            let id = v.uuid("notification_id", &request.get_ref().notification_id);
            v.into_result()?;
            let id = id.expect("valid when no violation").to_string();
            notification::find_owned(&self.read, &caller.person_id, &id)
                .await?
                .map(|row| to_wire(&row))
                .ok_or(ServiceError::NotFound("notification not found"))
        })
        .await
    }

    async fn open_listing_check(
        &self,
        request: Request<pb::OpenListingCheckRequest>,
    ) -> Result<Response<pb::ListingCheck>, Status> {
        answer(async {
            let caller = caller_in_region(&request, &self.region)?;
            if !caller.has_role(ROLE_LISTING_CHECK) {
                return Err(ServiceError::PermissionDenied(
                    "only the web opens listing-check links",
                ));
            }
            let token = request.get_ref().token.trim();
            let mut v = Violations::new();
            v.line("token", token, true, 2_000);
            v.into_result()?;
            let check = self
                .links
                .verify_check(token)
                .filter(|c| c.expires_at_ms > self.clock.now_ms())
                .ok_or_else(|| {
                    ServiceError::FailedPrecondition(
                        "this link is not valid or has expired: confirm the details from your group's page instead".into(),
                    )
                })?;
            Ok(pb::ListingCheck {
                person_id: check.person,
                group_id: check.group,
                checked_at: Some(selfhelp_core::time::to_timestamp(check.checked_at_ms)),
            })
        })
        .await
    }

    async fn mark_read(
        &self,
        request: Request<pb::MarkReadRequest>,
    ) -> Result<Response<pb::MarkReadResponse>, Status> {
        answer(async {
            let caller = caller_in_region(&request, &self.region)?;
            let req = request.into_inner();
            let mut v = Violations::new();
            if req.all && !req.notification_ids.is_empty() {
                v.add("notification_ids", "give either ids or all, not both");
            }
            if !req.all && req.notification_ids.is_empty() {
                v.add("notification_ids", "give the ids to mark, or set all");
            }
            if req.notification_ids.len() > MAX_MARK {
                v.add("notification_ids", format!("at most {MAX_MARK} at once"));
            }
            let mut ids = Vec::new();
            for (i, id) in req.notification_ids.iter().enumerate() {
                if let Some(id) = v.uuid(&format!("notification_ids[{i}]"), id) {
                    ids.push(id.to_string());
                }
            }
            v.into_result()?;
            ids.sort();
            ids.dedup();
            if !req.all {
                // Someone else's notification is indistinguishable from a missing one.
                let owned = notification::count_owned(&self.db, &caller.person_id, &ids).await?;
                if owned != ids.len() as u64 {
                    return Err(ServiceError::NotFound("notification not found"));
                }
            }
            let selection = (!req.all).then_some(ids.as_slice());
            notification::mark_read(&self.db, &caller.person_id, selection, self.clock.now_ms())
                .await?;
            let unread = notification::unread_count(&self.db, &caller.person_id).await?;
            Ok(pb::MarkReadResponse {
                unread_count: unread as i64,
            })
        })
        .await
    }

    type WatchNotificationsStream = ReceiverStream<Result<pb::Notification, Status>>;

    async fn watch_notifications(
        &self,
        request: Request<pb::WatchNotificationsRequest>,
    ) -> Result<Response<Self::WatchNotificationsStream>, Status> {
        answer(async {
            let caller = caller_in_region(&request, &self.region)?;
            let after = request.into_inner().after_id;
            let mut v = Violations::new();
            let resume = (!after.is_empty())
                .then(|| v.uuid("after_id", &after))
                .flatten()
                .map(|u| u.to_string());
            v.into_result()?;
            let slot = self.live.open(&caller.person_id, &self.watch)?;
            // The stream ends with the token that opened it; the client signs in
            // again and resumes with `after_id`.
            let token_left = Duration::from_secs(
                u64::try_from(caller.expires_at - chrono::Utc::now().timestamp()).unwrap_or(0),
            );
            // Without a resume point, only what arrives from now on.
            let mut cursor = match resume {
                Some(id) => Some(id),
                None => notification::newest_id(&self.read, &caller.person_id).await?,
            };
            let (tx, rx) = tokio::sync::mpsc::channel(WATCH_BATCH as usize);
            let (db, shutdown, person) =
                (self.read.clone(), self.shutdown.clone(), caller.person_id);
            tokio::spawn(async move {
                let expired = tokio::time::sleep(token_left);
                tokio::pin!(expired);
                let wake = slot.wake();
                loop {
                    // Listening before reading: a wake-up that comes while we read
                    // is not lost.
                    let woken = wake.notified();
                    tokio::pin!(woken);
                    woken.as_mut().enable();
                    match notification::after(&db, &person, cursor.as_deref(), WATCH_BATCH).await {
                        Ok(rows) => {
                            // A full batch means more may wait: read on at once.
                            let more = rows.len() as u64 == WATCH_BATCH;
                            for n in rows {
                                cursor = Some(n.id.clone());
                                if tx.send(Ok(to_wire(&n))).await.is_err() {
                                    return; // the client went away
                                }
                            }
                            if more {
                                continue;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "watching notifications failed");
                            let _ = tx.send(Err(ServiceError::from(e).into())).await;
                            return;
                        }
                    }
                    tokio::select! {
                        _ = shutdown.wait() => return,
                        _ = tx.closed() => return,
                        _ = &mut expired => {
                            let _ = tx
                                .send(Err(Status::unauthenticated(
                                    "the token has expired: sign in again and resume with after_id",
                                )))
                                .await;
                            return;
                        }
                        _ = &mut woken => {}
                        _ = tokio::time::sleep(crate::live::SAFETY_LOOK) => {}
                    }
                }
            });
            Ok(ReceiverStream::new(rx))
        })
        .await
    }

    async fn export_my_data(
        &self,
        request: Request<pb::ExportMyDataRequest>,
    ) -> Result<Response<pb::ExportMyDataResponse>, Status> {
        answer(async {
            let caller = caller_in_region(&request, &self.region)?;
            let person = caller.person_id.as_str();
            let rfc3339 = |ms: i64| to_timestamp(ms).to_string();
            let inbox: Vec<_> = notification::all_for(&self.db, person)
                .await
                ?
                .into_iter()
                .map(|n| {
                    json!({
                        "id": n.id,
                        "kind": n.kind,
                        "title": n.title,
                        "body": n.body,
                        "group_id": n.group_id,
                        "created_at": rfc3339(n.created_at_ms),
                        "read_at": n.read_at_ms.map(rfc3339),
                    })
                })
                .collect();
            let updates: Vec<_> = audience::of_person(&self.db, person)
                .await
                ?
                .into_iter()
                .map(|a| json!({"group_id": a.group_id, "as": a.relation.to_lowercase()}))
                .collect();
            let held = preference::get(&self.db, person).await?;
            let alerts: Vec<_> = alert::of_person(&self.db, person)
                .await
                ?
                .into_iter()
                .map(|a| {
                    json!({
                        "id": a.id, "topics": a.topics(), "latitude": a.latitude,
                        "longitude": a.longitude, "radius_km": a.radius_km, "label": a.label,
                        "created_at": rfc3339(a.created_at_ms),
                    })
                })
                .collect();
            // The signing secret is left out: it was shown once, on registering.
            let hooks: Vec<_> = webhook::of_owner(&self.db, person)
                .await
                ?
                .into_iter()
                .map(|h| {
                    json!({
                        "id": h.id, "url": h.url, "kinds": h.kinds().iter().map(|k| k.as_str()).collect::<Vec<_>>(),
                        "active": h.active, "disabled_reason": h.disabled_reason,
                        "created_at": rfc3339(h.created_at_ms),
                    })
                })
                .collect();
            let sent: Vec<_> = delivery::all_for(&self.db, person)
                .await
                ?
                .into_iter()
                .map(|d| {
                    json!({
                        "id": d.id, "notification_id": d.notification_id, "digest": d.is_digest,
                        "channel": d.channel, "webhook_id": d.webhook_id, "status": d.status,
                        "attempts": d.attempts, "created_at": rfc3339(d.created_at_ms),
                        "sent_at": d.sent_at_ms.map(rfc3339),
                    })
                })
                .collect();
            let digests: Vec<_> = digest::of_person(&self.db, person)
                .await
                ?
                .into_iter()
                .map(|d| json!({"id": d.id, "period": d.period, "items": d.item_count}))
                .collect();
            let doc = json!({
                "service": "notifications",
                "person_id": person,
                "exported_at": rfc3339(self.clock.now_ms()),
                "notifications": inbox,
                "group_updates": updates,
                "email": held.email,
                "email_confirmed_at": held.email_confirmed_at_ms.map(rfc3339),
                "preferences": held.preferences,
                "alerts": alerts,
                "webhooks": hooks,
                "deliveries": sent,
                "digests": digests,
            });
            Ok(pb::ExportMyDataResponse {
                json: serde_json::to_string_pretty(&doc).expect("JSON values serialise"),
            })
        })
        .await
    }

    async fn get_preferences(
        &self,
        request: Request<pb::GetPreferencesRequest>,
    ) -> Result<Response<pb::Preferences>, Status> {
        let caller = self.caller(&request)?;
        Ok(Response::new(self.preferences_of(&caller).await?))
    }

    async fn update_preferences(
        &self,
        request: Request<pb::UpdatePreferencesRequest>,
    ) -> Result<Response<pb::Preferences>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        Ok(Response::new(
            self.update_preferences_of(&caller, req).await?,
        ))
    }

    async fn contact_organisers(
        &self,
        request: Request<pb::ContactOrganisersRequest>,
    ) -> Result<Response<pb::ContactOrganisersResponse>, Status> {
        let caller = self.caller(&request)?;
        Ok(Response::new(
            self.relay_to_organisers(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn confirm_sign_in_address(
        &self,
        request: Request<pb::ConfirmSignInAddressRequest>,
    ) -> Result<Response<pb::Preferences>, Status> {
        let caller = self.caller(&request)?;
        Ok(Response::new(
            self.confirm_sign_in_address_of(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn create_alert(
        &self,
        request: Request<pb::CreateAlertRequest>,
    ) -> Result<Response<pb::Alert>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        Ok(Response::new(self.create_alert_for(&caller, req).await?))
    }

    async fn list_alerts(
        &self,
        request: Request<pb::ListAlertsRequest>,
    ) -> Result<Response<pb::ListAlertsResponse>, Status> {
        let caller = self.caller(&request)?;
        Ok(Response::new(self.alerts_of(&caller).await?))
    }

    async fn delete_alert(
        &self,
        request: Request<pb::DeleteAlertRequest>,
    ) -> Result<Response<pb::DeleteAlertResponse>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        self.delete_alert_of(&caller, &req.alert_id).await?;
        Ok(Response::new(pb::DeleteAlertResponse {}))
    }

    async fn register_webhook(
        &self,
        request: Request<pb::RegisterWebhookRequest>,
    ) -> Result<Response<pb::RegisterWebhookResponse>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        Ok(Response::new(
            self.register_webhook_for(&caller, req).await?,
        ))
    }

    async fn list_webhooks(
        &self,
        request: Request<pb::ListWebhooksRequest>,
    ) -> Result<Response<pb::ListWebhooksResponse>, Status> {
        let caller = self.caller(&request)?;
        Ok(Response::new(self.webhooks_of(&caller).await?))
    }

    async fn delete_webhook(
        &self,
        request: Request<pb::DeleteWebhookRequest>,
    ) -> Result<Response<pb::DeleteWebhookResponse>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        self.delete_webhook_of(&caller, &req.webhook_id).await?;
        Ok(Response::new(pb::DeleteWebhookResponse {}))
    }

    async fn list_deliveries(
        &self,
        request: Request<pb::ListDeliveriesRequest>,
    ) -> Result<Response<pb::ListDeliveriesResponse>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        Ok(Response::new(self.deliveries_for(&caller, req).await?))
    }

    async fn replay_delivery(
        &self,
        request: Request<pb::ReplayDeliveryRequest>,
    ) -> Result<Response<pb::Delivery>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        Ok(Response::new(self.replay(&caller, &req.delivery_id).await?))
    }
}

fn to_wire(n: &notification::Model) -> pb::Notification {
    let kind = Kind::parse(&n.kind).map_or(pb::NotificationKind::Unspecified, kind_to_wire);
    pb::Notification {
        id: n.id.clone(),
        kind: kind.into(),
        title: n.title.clone(),
        body: n.body.clone(),
        group_id: n.group_id.clone(),
        created_at: Some(to_timestamp(n.created_at_ms)),
        read_at: n.read_at_ms.map(to_timestamp),
    }
}

pub(crate) fn kind_to_wire(kind: Kind) -> pb::NotificationKind {
    pb::NotificationKind::from_str_name(&format!("NOTIFICATION_KIND_{}", kind.as_str()))
        .unwrap_or(pb::NotificationKind::Unspecified)
}

pub(crate) fn kind_from_wire(kind: pb::NotificationKind) -> Option<Kind> {
    kind.as_str_name()
        .strip_prefix("NOTIFICATION_KIND_")
        .and_then(Kind::parse)
}
