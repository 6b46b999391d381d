//! The NotificationsService RPCs: a person's own inbox only, listed or live.

use sea_orm::DatabaseConnection;
use selfhelp_platform::Shutdown;
use selfhelp_platform::auth::Caller;
use selfhelp_platform::grpc::require_caller;
use selfhelp_platform::time::{now_ms, to_timestamp};
use selfhelp_platform::validation::{self, Violations};
use selfhelp_proto::common::v1::PageResponse;
use selfhelp_proto::notifications::v1 as pb;
use selfhelp_proto::notifications::v1::notifications_service_server::NotificationsService;
use serde_json::json;
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::domain::messages::Kind;
use crate::error::NotificationsError;
use crate::store::{audience, notification};

pub struct NotificationsApi {
    db: DatabaseConnection,
    region: String,
    /// Ends live streams when the service stops.
    shutdown: Shutdown,
}

/// How often a live stream looks for new notifications. Any replica may have
/// stored them (consumers are shared), so each stream asks the database.
const WATCH_POLL: Duration = Duration::from_millis(500);
/// Notifications sent per look; the next look sends the rest.
const WATCH_BATCH: u64 = 100;

impl NotificationsApi {
    pub fn new(db: DatabaseConnection, region: String, shutdown: Shutdown) -> Self {
        Self {
            db,
            region,
            shutdown,
        }
    }

    fn check_region(&self, caller: &Caller) -> Result<(), NotificationsError> {
        if caller.region == self.region {
            Ok(())
        } else {
            Err(NotificationsError::PermissionDenied(
                "your token is for another region",
            ))
        }
    }
}

const MAX_MARK: usize = 500;

#[tonic::async_trait]
impl NotificationsService for NotificationsApi {
    async fn list_notifications(
        &self,
        request: Request<pb::ListNotificationsRequest>,
    ) -> Result<Response<pb::ListNotificationsResponse>, Status> {
        let caller = require_caller(&request)?;
        self.check_region(&caller)?;
        let req = request.into_inner();
        let page = req.page.unwrap_or_default();
        let mut v = Violations::new();
        let limit = validation::page_size(&mut v, "page.page_size", page.page_size, 20, 100);
        // The token is the id of the last item shown (ids are time-ordered UUIDv7),
        // so new notifications arriving between pages don't shift what follows.
        let before = (!page.page_token.is_empty())
            .then(|| v.uuid("page.page_token", &page.page_token))
            .flatten();
        v.into_result().map_err(NotificationsError::from)?;
        let before = before.map(|u| u.to_string());
        let rows = notification::list(
            &self.db,
            &caller.person_id,
            req.unread_only,
            before.as_deref(),
            limit + 1,
        )
        .await
        .map_err(NotificationsError::from)?;
        let has_more = rows.len() as u64 > limit;
        let rows: Vec<_> = rows.into_iter().take(limit as usize).collect();
        let unread = notification::unread_count(&self.db, &caller.person_id)
            .await
            .map_err(NotificationsError::from)?;
        Ok(Response::new(pb::ListNotificationsResponse {
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
        }))
    }

    async fn mark_read(
        &self,
        request: Request<pb::MarkReadRequest>,
    ) -> Result<Response<pb::MarkReadResponse>, Status> {
        let caller = require_caller(&request)?;
        self.check_region(&caller)?;
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
        v.into_result().map_err(NotificationsError::from)?;
        ids.sort();
        ids.dedup();
        if !req.all {
            // Someone else's notification is indistinguishable from a missing one.
            let owned = notification::count_owned(&self.db, &caller.person_id, &ids)
                .await
                .map_err(NotificationsError::from)?;
            if owned != ids.len() as u64 {
                return Err(NotificationsError::NotFound.into());
            }
        }
        let selection = (!req.all).then_some(ids.as_slice());
        notification::mark_read(&self.db, &caller.person_id, selection, now_ms())
            .await
            .map_err(NotificationsError::from)?;
        let unread = notification::unread_count(&self.db, &caller.person_id)
            .await
            .map_err(NotificationsError::from)?;
        Ok(Response::new(pb::MarkReadResponse {
            unread_count: unread as i64,
        }))
    }

    type WatchNotificationsStream = ReceiverStream<Result<pb::Notification, Status>>;

    async fn watch_notifications(
        &self,
        request: Request<pb::WatchNotificationsRequest>,
    ) -> Result<Response<Self::WatchNotificationsStream>, Status> {
        let caller = require_caller(&request)?;
        self.check_region(&caller)?;
        let after = request.into_inner().after_id;
        let mut v = Violations::new();
        let resume = (!after.is_empty())
            .then(|| v.uuid("after_id", &after))
            .flatten()
            .map(|u| u.to_string());
        v.into_result().map_err(NotificationsError::from)?;
        // Without a resume point, only what arrives from now on.
        let mut cursor = match resume {
            Some(id) => Some(id),
            None => notification::newest_id(&self.db, &caller.person_id)
                .await
                .map_err(NotificationsError::from)?,
        };
        let (tx, rx) = tokio::sync::mpsc::channel(WATCH_BATCH as usize);
        let (db, shutdown, person) = (self.db.clone(), self.shutdown.clone(), caller.person_id);
        tokio::spawn(async move {
            loop {
                match notification::after(&db, &person, cursor.as_deref(), WATCH_BATCH).await {
                    Ok(rows) => {
                        for n in rows {
                            cursor = Some(n.id.clone());
                            if tx.send(Ok(to_wire(&n))).await.is_err() {
                                return; // the client went away
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "watching notifications failed");
                        let _ = tx.send(Err(NotificationsError::from(e).into())).await;
                        return;
                    }
                }
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(WATCH_POLL) => {}
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn export_my_data(
        &self,
        request: Request<pb::ExportMyDataRequest>,
    ) -> Result<Response<pb::ExportMyDataResponse>, Status> {
        let caller = require_caller(&request)?;
        self.check_region(&caller)?;
        let person = caller.person_id.as_str();
        let rfc3339 = |ms: i64| to_timestamp(ms).to_string();
        let inbox: Vec<_> = notification::all_for(&self.db, person)
            .await
            .map_err(NotificationsError::from)?
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
            .map_err(NotificationsError::from)?
            .into_iter()
            .map(|a| json!({"group_id": a.group_id, "as": a.relation.to_lowercase()}))
            .collect();
        let doc = json!({
            "service": "notifications",
            "person_id": person,
            "exported_at": rfc3339(now_ms()),
            "notifications": inbox,
            "group_updates": updates,
        });
        Ok(Response::new(pb::ExportMyDataResponse {
            json: serde_json::to_string_pretty(&doc).expect("JSON values serialise"),
        }))
    }
}

fn to_wire(n: &notification::Model) -> pb::Notification {
    let kind = match Kind::parse(&n.kind) {
        Some(Kind::MemberJoined) => pb::NotificationKind::MemberJoined,
        Some(Kind::Welcome) => pb::NotificationKind::Welcome,
        Some(Kind::JoinRequested) => pb::NotificationKind::JoinRequested,
        Some(Kind::RequestApproved) => pb::NotificationKind::RequestApproved,
        Some(Kind::RequestDeclined) => pb::NotificationKind::RequestDeclined,
        Some(Kind::Invited) => pb::NotificationKind::Invited,
        Some(Kind::Waitlisted) => pb::NotificationKind::Waitlisted,
        Some(Kind::PromotedFromWaitlist) => pb::NotificationKind::PromotedFromWaitlist,
        Some(Kind::Removed) => pb::NotificationKind::Removed,
        Some(Kind::GroupClosed) => pb::NotificationKind::GroupClosed,
        Some(Kind::RotaReminder) => pb::NotificationKind::RotaReminder,
        Some(Kind::GroupListed) => pb::NotificationKind::GroupListed,
        Some(Kind::GroupRejected) => pb::NotificationKind::GroupRejected,
        Some(Kind::GroupSuspended) => pb::NotificationKind::GroupSuspended,
        Some(Kind::ReviewDue) => pb::NotificationKind::ReviewDue,
        Some(Kind::MeetingChanged) => pb::NotificationKind::MeetingChanged,
        None => pb::NotificationKind::Unspecified,
    };
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
