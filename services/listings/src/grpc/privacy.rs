//! What listings holds about a person, for their download: the roles
//! membership reported, the groups that name them (created, checked or
//! organised), the changes they made and their edits waiting for review.

use selfhelp_core::caller::Caller;
use selfhelp_core::time::to_rfc3339;
use selfhelp_proto::listings::v1 as pb;

use super::ListingsApi;
use crate::error::ServiceError;
use crate::store::{group, history, pending_edit, roles};

impl ListingsApi {
    pub(super) async fn export_my_data(
        &self,
        caller: &Caller,
    ) -> Result<pb::ExportMyDataResponse, ServiceError> {
        let person = caller.person_id.as_str();
        let roles: Vec<serde_json::Value> = roles::of_person(&self.read, person)
            .await?
            .into_iter()
            .map(|r| serde_json::json!({ "group_id": r.group_id, "role": r.role }))
            .collect();
        let groups: Vec<serde_json::Value> = group::naming(&self.read, person)
            .await?
            .into_iter()
            .map(|g| {
                serde_json::json!({
                    "group_id": g.id,
                    "name": g.name,
                    "created": g.created_by == person,
                    "checked": g.assured_by.as_deref() == Some(person),
                    "organiser": g.organiser_ids().iter().any(|o| o == person),
                })
            })
            .collect();
        let changes: Vec<serde_json::Value> = history::by_person(&self.read, person)
            .await?
            .into_iter()
            .map(|c| {
                serde_json::json!({
                    "group_id": c.group_id,
                    "field": c.field,
                    "old_value": c.old_value,
                    "new_value": c.new_value,
                    "changed_at": to_rfc3339(c.changed_at_ms),
                })
            })
            .collect();
        let edits: Vec<serde_json::Value> = pending_edit::by_person(&self.read, person)
            .await?
            .into_iter()
            .map(|e| {
                serde_json::json!({
                    "group_id": e.group_id,
                    "changes": e.changes(),
                    "edited_at": to_rfc3339(e.edited_at_ms),
                })
            })
            .collect();
        let json = serde_json::json!({
            "person_id": person,
            "roles": roles,
            "groups": groups,
            "changes": changes,
            "edits_waiting": edits,
        });
        Ok(pb::ExportMyDataResponse {
            json: json.to_string(),
        })
    }
}
