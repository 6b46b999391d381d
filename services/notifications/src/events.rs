//! What notifications consumes: MEMBERSHIP events become inbox items. (LISTINGS
//! feeds the shared `group_view` read model: `selfhelp_platform::group_view`.)

use sea_orm::{DatabaseTransaction, DbErr};
use selfhelp_platform::bus::IncomingEvent;
use selfhelp_platform::group_view;
use selfhelp_platform::inbox::{EventHandler, HandlerError};
use selfhelp_platform::privacy::Eraser;
use selfhelp_platform::time::now_ms;
use selfhelp_proto::events::{types, v1 as ev};

use crate::domain::messages::{self, Change, Message};
use crate::store::{erased, notification};

pub struct MembershipEvents;

/// The change a membership event type stands for; `None` for events nobody is
/// told about here (leaving, role changes, follows).
fn change_of(ce_type: &str) -> Option<Change> {
    Some(match ce_type {
        types::MEMBER_REQUESTED => Change::Requested,
        types::MEMBER_APPROVED => Change::Approved,
        types::MEMBER_DECLINED => Change::Declined,
        types::MEMBER_INVITED => Change::Invited,
        types::MEMBER_WAITLISTED => Change::Waitlisted,
        types::MEMBER_PROMOTED => Change::Promoted,
        types::MEMBER_REMOVED => Change::Removed,
        types::MEMBER_BANNED => Change::Banned,
        types::MEMBER_ENDED => Change::Ended,
        _ => return None,
    })
}

/// A membership event someone is told about.
enum Told {
    Joined(ev::MemberJoined),
    Changed(Change, ev::MembershipChanged),
    DutyDue(ev::RotaDutyDue),
}

impl Told {
    fn decode(event: &IncomingEvent) -> Result<Option<Told>, HandlerError> {
        let poison =
            |e: prost::DecodeError| HandlerError::Poison(format!("{}: {e}", event.ce_type));
        match event.ce_type.as_str() {
            types::MEMBER_JOINED => return Ok(Some(Told::Joined(event.decode().map_err(poison)?))),
            types::ROTA_DUTY_DUE => {
                return Ok(Some(Told::DutyDue(event.decode().map_err(poison)?)));
            }
            _ => {}
        }
        match change_of(&event.ce_type) {
            Some(change) => Ok(Some(Told::Changed(change, event.decode().map_err(poison)?))),
            None => Ok(None),
        }
    }

    fn group_id(&self) -> &str {
        match self {
            Told::Joined(e) => &e.group_id,
            Told::Changed(_, e) => &e.group_id,
            Told::DutyDue(e) => &e.group_id,
        }
    }

    fn messages(&self, group: &group_view::Model) -> Vec<Message> {
        let organisers = group.organiser_ids();
        match self {
            Told::Joined(e) => messages::member_joined(&e.person_id, &group.name, &organisers),
            Told::Changed(change, e) => messages::membership_changed(
                *change,
                &e.person_id,
                &group.name,
                &organisers,
                &e.message,
                &e.reason,
            ),
            Told::DutyDue(e) => vec![messages::duty_due(
                &e.person_id,
                &e.duty,
                &group.name,
                &e.meeting_key,
            )],
        }
    }
}

#[async_trait::async_trait]
impl EventHandler for MembershipEvents {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &IncomingEvent,
    ) -> Result<(), HandlerError> {
        let Some(told) = Told::decode(event)? else {
            return Ok(()); // not something anyone is told about
        };
        // The group's name and organisers come from LISTINGS, a different stream:
        // if it is behind, try again shortly rather than tell people less.
        let Some(group) = group_view::find(txn, told.group_id()).await? else {
            return Err(HandlerError::Retry(format!(
                "group {} not known yet",
                told.group_id()
            )));
        };
        let now = now_ms();
        for message in told.messages(&group) {
            // An event about someone erased meanwhile tells them nothing.
            if erased::contains(txn, &message.recipient_id).await? {
                continue;
            }
            notification::insert(txn, &message, told.group_id(), &event.id, now).await?;
        }
        Ok(())
    }
}

/// Erasure in notifications: the person's inbox goes, and they are remembered
/// (under a pseudonym) as erased.
pub struct NotificationsEraser;

#[async_trait::async_trait]
impl Eraser for NotificationsEraser {
    async fn erase(&self, txn: &DatabaseTransaction, person: &str) -> Result<(), DbErr> {
        notification::delete_for(txn, person).await?;
        erased::mark(txn, person, now_ms()).await
    }
}
