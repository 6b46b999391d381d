//! What notifications consumes: MEMBERSHIP events become inbox items and keep
//! each group's audience (members, followers); LISTINGS events keep the shared
//! `group_view` read model and tell organisers, members and followers what
//! changed.

use sea_orm::{DatabaseTransaction, DbErr};
use selfhelp_core::time::{Clock, now_ms};
use selfhelp_group_view as group_view;
use selfhelp_platform::bus::IncomingEvent;
use selfhelp_platform::inbox::{EventHandler, HandlerError};
use selfhelp_platform::privacy::{Eraser, Pseudonyms};
use selfhelp_proto::events::{types, v1 as ev};

use crate::domain::messages::{self, Change, GroupNews, MeetingNews, Message};
use crate::routing;
use crate::store::{alert, audience, delivery, digest, erased, notification, preference, webhook};

pub struct MembershipEvents {
    pub clock: Clock,
    /// The region's time zone (quiet hours of people who set none).
    pub timezone: chrono_tz::Tz,
    /// How erased people are recorded.
    pub names: Pseudonyms,
}

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
    Left(ev::MembershipChanged),
    Changed(Change, ev::MembershipChanged),
    DutyDue(ev::RotaDutyDue),
    /// A skip or a swap handed turns on: the people affected are told.
    TurnsChanged(ev::RotaTurnsChanged),
    /// A swap was asked, declined or withdrawn: the other person is told.
    SwapRequest(ev::RotaSwapRequest),
    /// An organiser's message; its audience is read when it is told.
    Announced(ev::GroupAnnounced),
    /// The group's own running: agenda, notes, committees, terms.
    Notice(ev::GroupNotice),
}

impl Told {
    fn decode(event: &IncomingEvent) -> Result<Option<Told>, HandlerError> {
        let poison =
            |e: prost::DecodeError| HandlerError::Poison(format!("{}: {e}", event.ce_type));
        match event.ce_type.as_str() {
            types::MEMBER_JOINED => return Ok(Some(Told::Joined(event.decode().map_err(poison)?))),
            types::MEMBER_LEFT => return Ok(Some(Told::Left(event.decode().map_err(poison)?))),
            types::ROTA_DUTY_DUE => {
                return Ok(Some(Told::DutyDue(event.decode().map_err(poison)?)));
            }
            types::ROTA_TURNS_CHANGED => {
                return Ok(Some(Told::TurnsChanged(event.decode().map_err(poison)?)));
            }
            types::ROTA_SWAP_REQUEST => {
                return Ok(Some(Told::SwapRequest(event.decode().map_err(poison)?)));
            }
            types::GROUP_ANNOUNCED => {
                return Ok(Some(Told::Announced(event.decode().map_err(poison)?)));
            }
            types::GROUP_NOTICE => {
                return Ok(Some(Told::Notice(event.decode().map_err(poison)?)));
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
            Told::Left(e) => &e.group_id,
            Told::Changed(_, e) => &e.group_id,
            Told::DutyDue(e) => &e.group_id,
            Told::TurnsChanged(e) => &e.group_id,
            Told::SwapRequest(e) => &e.group_id,
            Told::Announced(e) => &e.group_id,
            Told::Notice(e) => &e.group_id,
        }
    }

    /// What `audience` (for an announcement: the group's members, and
    /// followers when asked) is told.
    fn messages(&self, group: &group_view::Model, audience: &[String]) -> Vec<Message> {
        let organisers = group.organiser_ids();
        match self {
            Told::Announced(e) => messages::announcement(audience, &group.name, &e.title, &e.body),
            Told::Notice(e) => {
                let notice = match e.kind() {
                    ev::NoticeKind::AgendaItem => messages::Notice::AgendaItem {
                        meeting_key: &e.meeting_key,
                        text: &e.text,
                    },
                    ev::NoticeKind::MeetingNotes => messages::Notice::MeetingNotes {
                        meeting_key: &e.meeting_key,
                        text: &e.text,
                    },
                    ev::NoticeKind::CommitteeNotice => messages::Notice::Committee {
                        committee: &e.committee,
                        title: &e.title,
                        text: &e.text,
                    },
                    ev::NoticeKind::CommitteeJoined => messages::Notice::OnCommittee {
                        committee: &e.committee,
                        duties: &e.text,
                    },
                    ev::NoticeKind::TermEnded => messages::Notice::TermEnded {
                        role: &e.title,
                        holder: &e.holder_id,
                        months: e.months,
                    },
                    ev::NoticeKind::SoleOrganiser => messages::Notice::SoleOrganiser {
                        holder: &e.holder_id,
                        months: e.months,
                        willing: e.willing,
                    },
                    // A kind this version does not know: nobody to tell.
                    ev::NoticeKind::Unspecified => return Vec::new(),
                };
                messages::group_notice(&notice, &e.recipient_ids, &e.group_id, &group.name)
            }
            Told::Joined(e) => messages::member_joined(
                &e.person_id,
                &group.name,
                &organisers,
                group
                    .welcome_with_joining_details
                    .then_some(group.joining_details.as_str()),
            ),
            Told::Left(e) => messages::member_left(&e.person_id, &group.name, &organisers),
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
            Told::SwapRequest(e) => {
                let step = match e.step() {
                    ev::SwapStep::Asked => messages::SwapStep::Asked,
                    ev::SwapStep::Declined => messages::SwapStep::Declined,
                    ev::SwapStep::Withdrawn => messages::SwapStep::Withdrawn,
                    // A step this version does not know: nobody to tell.
                    ev::SwapStep::Unspecified => return Vec::new(),
                };
                vec![messages::swap_request(
                    step,
                    &e.asked_by,
                    &e.asked_of,
                    &e.duty,
                    &group.name,
                    &e.meeting_key,
                    &e.other_meeting_key,
                )]
            }
            Told::TurnsChanged(e) => messages::turns_changed(
                &e.duty,
                &group.name,
                &e.changed_by,
                e.handovers.iter().map(|h| {
                    (
                        h.meeting_key.as_str(),
                        h.from_person_id.as_str(),
                        h.to_person_id.as_str(),
                    )
                }),
            ),
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
        self.handle_all(txn, &[event]).await
    }

    /// A fetch's worth of joins and other changes with a few statements in
    /// all, not a few per event: this is the busiest stream notifications reads.
    async fn handle_all(
        &self,
        txn: &DatabaseTransaction,
        events: &[&IncomingEvent],
    ) -> Result<(), HandlerError> {
        let mut changes = Vec::new();
        let mut told = Vec::new();
        for event in events {
            changes.extend(audience_change(event)?);
            if let Some(t) = Told::decode(event)? {
                told.push((*event, t));
            }
        }
        update_audience(txn, &self.names, changes).await?;
        if told.is_empty() {
            return Ok(()); // nothing anyone is told about
        }
        // The group's name and organisers come from LISTINGS, a different stream:
        // if it is behind, wait for it (for hours if need be) rather than tell
        // people less.
        let mut group_ids: Vec<&str> = told.iter().map(|(_, t)| t.group_id()).collect();
        group_ids.sort_unstable();
        group_ids.dedup();
        let groups = group_view::find_many(txn, &group_ids).await?;
        if let Some(missing) = group_ids.iter().find(|id| !groups.contains_key(**id)) {
            return Err(HandlerError::Waiting(format!(
                "group {missing} not known yet"
            )));
        }
        let mut messages: Vec<Vec<Message>> = Vec::with_capacity(told.len());
        for (_, t) in &told {
            let audience = match t {
                Told::Announced(e) => {
                    audience::members_of_group(txn, &e.group_id, e.include_followers).await?
                }
                _ => Vec::new(),
            };
            messages.push(t.messages(&groups[t.group_id()], &audience));
        }
        let by_event: Vec<routing::EventMessages> = told
            .iter()
            .zip(&messages)
            .map(|((event, t), messages)| routing::EventMessages {
                messages,
                group_id: t.group_id(),
                event_id: &event.id,
            })
            .collect();
        routing::deliver_all(txn, &self.names, &by_event, self.timezone, self.clock.now()).await?;
        Ok(())
    }
}

/// The change to a group's audience (active members and followers, who hear
/// about meeting changes) that a membership event makes, if any.
fn audience_change(event: &IncomingEvent) -> Result<Option<audience::Change>, HandlerError> {
    let poison = |e: prost::DecodeError| HandlerError::Poison(format!("{}: {e}", event.ce_type));
    // (group, person, relation, active, version)
    let change = match event.ce_type.as_str() {
        types::MEMBER_JOINED => {
            let e: ev::MemberJoined = event.decode().map_err(poison)?;
            (e.group_id, e.person_id, audience::MEMBER, true, e.version)
        }
        types::FOLLOW_STARTED | types::FOLLOW_STOPPED => {
            let e: ev::FollowChanged = event.decode().map_err(poison)?;
            // Follows have no version: their time orders them.
            let at = e
                .occurred_at
                .map(|t| t.seconds * 1_000 + i64::from(t.nanos / 1_000_000));
            let version = at.unwrap_or_else(now_ms);
            (
                e.group_id,
                e.person_id,
                audience::FOLLOWER,
                e.following,
                version,
            )
        }
        // Leaving tells no one, but the person hears no more of the group.
        t if t == types::MEMBER_LEFT || change_of(t).is_some() => {
            let e: ev::MembershipChanged = event.decode().map_err(poison)?;
            let active = match e.state.as_str() {
                "ACTIVE" => true,
                "LEFT" | "REMOVED" | "BANNED" | "DECLINED" => false,
                _ => return Ok(None), // not (yet) a member either way
            };
            (e.group_id, e.person_id, audience::MEMBER, active, e.version)
        }
        _ => return Ok(None),
    };
    let (group_id, person_id, relation, active, version) = change;
    Ok(Some(audience::Change {
        group_id,
        person_id,
        relation,
        active,
        version,
    }))
}

/// Records audience changes, except those about someone erased meanwhile:
/// an event about them must not store them again.
async fn update_audience(
    txn: &DatabaseTransaction,
    names: &Pseudonyms,
    mut changes: Vec<audience::Change>,
) -> Result<(), HandlerError> {
    if changes.is_empty() {
        return Ok(());
    }
    let people: Vec<&str> = changes.iter().map(|c| c.person_id.as_str()).collect();
    let erased = erased::among(txn, names, &people).await?;
    changes.retain(|c| !erased.contains(&c.person_id));
    audience::set_all(txn, &changes).await?;
    Ok(())
}

/// Consumes LISTINGS: keeps `group_view`, tells organisers about their group and
/// members and followers about meeting changes.
pub struct ListingsEvents {
    pub clock: Clock,
    /// The region's time zone, for meeting times that come as instants.
    pub timezone: chrono_tz::Tz,
    /// How erased people are recorded.
    pub names: Pseudonyms,
    /// One-click links that confirm a listing, in review-due reminders.
    pub check_links: Option<crate::links::CheckLinks>,
}

#[async_trait::async_trait]
impl EventHandler for ListingsEvents {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &IncomingEvent,
    ) -> Result<(), HandlerError> {
        let Some(snapshot) = selfhelp_proto::events::group_snapshot(&event.ce_type, &event.payload)
            .map_err(HandlerError::Poison)?
        else {
            return Ok(()); // topics: nobody is told
        };
        group_view::apply(txn, &snapshot, now_ms()).await?;
        let poison =
            |e: prost::DecodeError| HandlerError::Poison(format!("{}: {e}", event.ce_type));
        let local = |t: Option<prost_types::Timestamp>| {
            t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
                .map(|d| {
                    d.with_timezone(&self.timezone)
                        .format("%a %-d %b %Y, %H:%M")
                        .to_string()
                })
                .unwrap_or_default()
        };
        let news = match event.ce_type.as_str() {
            types::GROUP_PUBLISHED => Some(GroupNews::Listed),
            types::GROUP_PROPOSAL_LISTED => Some(GroupNews::ProposalListed),
            types::GROUP_REJECTED => {
                let e: ev::GroupRejected = event.decode().map_err(poison)?;
                Some(GroupNews::Rejected { note: e.note })
            }
            types::GROUP_SUSPENDED => {
                let e: ev::GroupStatusChanged = event.decode().map_err(poison)?;
                Some(GroupNews::Suspended { reason: e.reason })
            }
            types::GROUP_REVIEW_DUE => Some(GroupNews::ReviewDue),
            _ => None,
        };
        let meeting = match event.ce_type.as_str() {
            types::SCHEDULE_CHANGED => {
                let e: ev::ScheduleChanged = event.decode().map_err(poison)?;
                Some(MeetingNews::ScheduleChanged {
                    description: if e.rrule.is_empty() {
                        String::new()
                    } else {
                        e.description
                    },
                })
            }
            types::OCCURRENCE_CANCELLED => {
                let e: ev::OccurrenceCancelled = event.decode().map_err(poison)?;
                Some(MeetingNews::Cancelled {
                    date: e.date,
                    note: e.note,
                })
            }
            types::OCCURRENCE_MOVED => {
                let e: ev::OccurrenceMoved = event.decode().map_err(poison)?;
                Some(MeetingNews::Moved {
                    from: e.original_date,
                    to: local(e.new_starts_at),
                    note: e.note,
                })
            }
            types::OCCURRENCE_ADDED => {
                let e: ev::OccurrenceAdded = event.decode().map_err(poison)?;
                Some(MeetingNews::Added {
                    when: local(e.starts_at),
                    note: e.note,
                })
            }
            _ => None,
        };
        let messages = match (news, meeting) {
            (Some(news), _) => {
                let mut out = messages::group_news(&news, &snapshot.name, &snapshot.organiser_ids);
                if news == GroupNews::ReviewDue
                    && let Some(links) = &self.check_links
                {
                    let e: ev::GroupReviewDue = event.decode().map_err(poison)?;
                    let checked_at_ms = e
                        .assured_at
                        .as_ref()
                        .and_then(selfhelp_core::time::timestamp_ms)
                        .unwrap_or(0);
                    let expires_at_ms = self.clock.now_ms() + crate::links::LISTING_CHECK_VALID_MS;
                    for m in &mut out {
                        let url = links.url(&crate::links::ListingCheck {
                            person: m.recipient_id.clone(),
                            group: snapshot.group_id.clone(),
                            checked_at_ms,
                            expires_at_ms,
                        });
                        messages::add_check_link(m, &url);
                    }
                }
                if news == GroupNews::Listed {
                    let (followers, alerted) = told_of_new_group(txn, &snapshot).await?;
                    out.extend(messages::followed_group_listed(&followers, &snapshot.name));
                    out.extend(messages::new_group_alert(&alerted, &snapshot.name));
                }
                out
            }
            (_, Some(meeting)) => {
                let people = audience::of_group(txn, &snapshot.group_id).await?;
                messages::meeting_changed(&meeting, &snapshot.name, &people)
            }
            _ => return Ok(()),
        };
        routing::deliver(
            txn,
            &self.names,
            &messages,
            &snapshot.group_id,
            &event.id,
            self.timezone,
            self.clock.now(),
        )
        .await?;
        Ok(())
    }
}

/// Who hears that a group is now listed, each once and only the first time
/// (its organisers excepted): the people who followed it while it was being
/// started, then the people with a saved alert it matches.
async fn told_of_new_group(
    txn: &DatabaseTransaction,
    group: &ev::GroupSnapshot,
) -> Result<(Vec<String>, Vec<String>), DbErr> {
    let followers: Vec<String> = audience::of_group(txn, &group.group_id)
        .await?
        .into_iter()
        .filter(|p| !group.organiser_ids.contains(p))
        .collect();
    let alerted: Vec<String> = alerted(txn, group)
        .await?
        .into_iter()
        .filter(|p| !followers.contains(p))
        .collect();
    // A group listed again (after a suspension) is not news to those told once.
    let kind = messages::Kind::NewGroupAlert;
    let everyone: Vec<String> = followers.iter().chain(&alerted).cloned().collect();
    let told = notification::recipients_of_kind(txn, &group.group_id, kind, &everyone).await?;
    let untold = |people: Vec<String>| -> Vec<String> {
        people.into_iter().filter(|p| !told.contains(p)).collect()
    };
    Ok((untold(followers), untold(alerted)))
}

/// People with a saved alert matching a newly listed group (its organisers
/// excepted).
async fn alerted(
    txn: &DatabaseTransaction,
    group: &ev::GroupSnapshot,
) -> Result<Vec<String>, DbErr> {
    let places: Vec<(f64, f64)> = group
        .places
        .iter()
        .map(|p| (p.latitude, p.longitude))
        .collect();
    let listed = crate::domain::alerts::NewGroup {
        topics: &group.topics,
        broader_topics: &group.broader_topics,
        places: &places,
        meets_online: group.meets_online,
    };
    let mut people = std::collections::BTreeSet::new();
    let mut after = String::new();
    loop {
        let page = alert::page(txn, &after, 1_000).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.id.clone();
        for a in &page {
            if !group.organiser_ids.contains(&a.person_id) && a.rule().matches(&listed) {
                people.insert(a.person_id.clone());
            }
        }
    }
    Ok(people.into_iter().collect())
}

/// Erasure in notifications: the person's inbox goes, and they are remembered
/// (under a pseudonym) as erased.
pub struct NotificationsEraser {
    /// How erased people are recorded.
    pub names: Pseudonyms,
}

#[async_trait::async_trait]
impl Eraser for NotificationsEraser {
    async fn erase(&self, txn: &DatabaseTransaction, person: &str) -> Result<(), DbErr> {
        notification::delete_for(txn, person).await?;
        audience::delete_for(txn, person).await?;
        delivery::delete_for(txn, person).await?;
        digest::delete_for(txn, person).await?;
        preference::delete_for(txn, person).await?;
        alert::delete_for(txn, person).await?;
        webhook::delete_for(txn, person).await?;
        erased::mark(txn, &self.names, person, now_ms()).await
    }
}
