//! Who is told what when an event arrives. Titles may show on a lock screen or in
//! an email subject, so they never name a group or a health condition; group
//! names appear only in bodies, which the recipient sees after opening.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    MemberJoined,
    Welcome,
    JoinRequested,
    RequestApproved,
    RequestDeclined,
    Invited,
    Waitlisted,
    PromotedFromWaitlist,
    Removed,
    GroupClosed,
    RotaReminder,
    GroupListed,
    GroupRejected,
    GroupSuspended,
    ReviewDue,
    MeetingChanged,
    MemberLeft,
    NewGroupAlert,
    WebhookDisabled,
    GroupAnnouncement,
    OrganiserContact,
    ForumUpdate,
    CommitteeNotice,
    Handover,
}

pub const ALL_KINDS: [Kind; 24] = [
    Kind::MemberJoined,
    Kind::Welcome,
    Kind::JoinRequested,
    Kind::RequestApproved,
    Kind::RequestDeclined,
    Kind::Invited,
    Kind::Waitlisted,
    Kind::PromotedFromWaitlist,
    Kind::Removed,
    Kind::GroupClosed,
    Kind::RotaReminder,
    Kind::GroupListed,
    Kind::GroupRejected,
    Kind::GroupSuspended,
    Kind::ReviewDue,
    Kind::MeetingChanged,
    Kind::MemberLeft,
    Kind::NewGroupAlert,
    Kind::WebhookDisabled,
    Kind::GroupAnnouncement,
    Kind::OrganiserContact,
    Kind::ForumUpdate,
    Kind::CommitteeNotice,
    Kind::Handover,
];

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::MemberJoined => "MEMBER_JOINED",
            Kind::Welcome => "WELCOME",
            Kind::JoinRequested => "JOIN_REQUESTED",
            Kind::RequestApproved => "REQUEST_APPROVED",
            Kind::RequestDeclined => "REQUEST_DECLINED",
            Kind::Invited => "INVITED",
            Kind::Waitlisted => "WAITLISTED",
            Kind::PromotedFromWaitlist => "PROMOTED_FROM_WAITLIST",
            Kind::Removed => "REMOVED",
            Kind::GroupClosed => "GROUP_CLOSED",
            Kind::RotaReminder => "ROTA_REMINDER",
            Kind::GroupListed => "GROUP_LISTED",
            Kind::GroupRejected => "GROUP_REJECTED",
            Kind::GroupSuspended => "GROUP_SUSPENDED",
            Kind::ReviewDue => "REVIEW_DUE",
            Kind::MeetingChanged => "MEETING_CHANGED",
            Kind::MemberLeft => "MEMBER_LEFT",
            Kind::NewGroupAlert => "NEW_GROUP_ALERT",
            Kind::WebhookDisabled => "WEBHOOK_DISABLED",
            Kind::GroupAnnouncement => "GROUP_ANNOUNCEMENT",
            Kind::OrganiserContact => "ORGANISER_CONTACT",
            Kind::ForumUpdate => "FORUM_UPDATE",
            Kind::CommitteeNotice => "COMMITTEE_NOTICE",
            Kind::Handover => "HANDOVER",
        }
    }

    /// The preference category the kind belongs to; `None` for notices about the
    /// person's own account (a webhook stopped), which nobody can turn off.
    pub fn category(self) -> Option<Category> {
        Some(match self {
            Kind::MemberJoined
            | Kind::MemberLeft
            | Kind::GroupClosed
            | Kind::GroupListed
            | Kind::GroupRejected
            | Kind::GroupSuspended
            | Kind::MeetingChanged
            | Kind::GroupAnnouncement
            | Kind::ForumUpdate
            | Kind::CommitteeNotice => Category::GroupUpdates,
            Kind::Welcome
            | Kind::JoinRequested
            | Kind::RequestApproved
            | Kind::RequestDeclined
            | Kind::Invited
            | Kind::Waitlisted
            | Kind::PromotedFromWaitlist
            | Kind::Removed
            | Kind::OrganiserContact => Category::MembershipRequests,
            Kind::RotaReminder | Kind::ReviewDue | Kind::Handover => Category::Reminders,
            Kind::NewGroupAlert => Category::NewGroupAlerts,
            Kind::WebhookDisabled => return None,
        })
    }

    /// Time-critical kinds go out at once even to people on a digest: someone
    /// may travel to a meeting that no longer happens.
    pub fn time_critical(self) -> bool {
        matches!(self, Kind::MeetingChanged)
    }

    /// A group's news that muting the group silences. News about the person's
    /// own membership or duties still comes.
    pub fn mutable(self) -> bool {
        matches!(
            self,
            Kind::MeetingChanged
                | Kind::MemberJoined
                | Kind::MemberLeft
                | Kind::ReviewDue
                | Kind::GroupAnnouncement
                | Kind::ForumUpdate
        )
    }

    pub fn parse(s: &str) -> Option<Kind> {
        ALL_KINDS.into_iter().find(|k| k.as_str() == s)
    }
}

pub use super::preferences::Category;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub recipient_id: String,
    pub kind: Kind,
    pub title: String,
    pub body: String,
}

/// The messages for "`person` joined `group_name`": a welcome for the person
/// (with the joining details when the organisers chose to give them), and a
/// note for each organiser other than the person.
pub fn member_joined(
    person: &str,
    group_name: &str,
    organisers: &[String],
    joining_details: Option<&str>,
) -> Vec<Message> {
    let details = joining_details
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| format!("\n\nHow to join the meetings: {d}"))
        .unwrap_or_default();
    let mut out = vec![Message {
        recipient_id: person.to_string(),
        kind: Kind::Welcome,
        title: "Welcome to your new group".into(),
        body: format!(
            "You are now a member of {group_name}. You can see when it meets and leave at any time.{details}"
        ),
    }];
    for organiser in organisers.iter().filter(|o| o.as_str() != person) {
        out.push(Message {
            recipient_id: organiser.clone(),
            kind: Kind::MemberJoined,
            title: "A new member joined your group".into(),
            body: format!("Someone new joined {group_name}."),
        });
    }
    out
}

/// The note each organiser (other than the person) gets when someone leaves.
pub fn member_left(person: &str, group_name: &str, organisers: &[String]) -> Vec<Message> {
    organisers
        .iter()
        .filter(|o| o.as_str() != person && !o.is_empty())
        .map(|organiser| Message {
            recipient_id: organiser.clone(),
            kind: Kind::MemberLeft,
            title: "A member left your group".into(),
            body: format!("Someone left {group_name}."),
        })
        .collect()
}

/// "A group you asked about is listed": one message per alert owner.
pub fn new_group_alert(people: &[String], group_name: &str) -> Vec<Message> {
    people
        .iter()
        .map(|person| Message {
            recipient_id: person.clone(),
            kind: Kind::NewGroupAlert,
            title: "A new group matches your alert".into(),
            body: format!("{group_name} is now listed in the directory near the place you chose."),
        })
        .collect()
}

/// To the people who followed a proposal, once the group it became is listed.
/// Of the same kind as an alert's message: both say a new group is there, and
/// nobody hears it twice.
pub fn followed_group_listed(people: &[String], group_name: &str) -> Vec<Message> {
    people
        .iter()
        .map(|person| Message {
            recipient_id: person.clone(),
            kind: Kind::NewGroupAlert,
            title: "A group you follow has started".into(),
            body: format!(
                "{group_name}, which you followed while it was being started, is now listed in the directory: you can see when it meets and join."
            ),
        })
        .collect()
}

/// To a webhook's owner when deliveries to it stop.
pub fn webhook_disabled(owner: &str, url: &str, why: &str) -> Message {
    Message {
        recipient_id: owner.to_string(),
        kind: Kind::WebhookDisabled,
        title: "A webhook of yours was turned off".into(),
        body: format!(
            "We stopped sending to {url}: {why}. Register it again once it can receive deliveries."
        ),
    }
}

/// A membership change as notifications sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Requested,
    Approved,
    Declined,
    Invited,
    Waitlisted,
    Promoted,
    Removed,
    Banned,
    /// Ended for a reason such as `GROUP_ARCHIVED`.
    Ended,
}

/// Who hears of a membership change of `person` in `group_name`, and what they
/// read. `note` is the organiser's message to the person, `reason` why it ended.
pub fn membership_changed(
    change: Change,
    person: &str,
    group_name: &str,
    organisers: &[String],
    note: &str,
    reason: &str,
) -> Vec<Message> {
    let to_person = |kind, title: &str, body: String| {
        vec![Message {
            recipient_id: person.to_string(),
            kind,
            title: title.to_string(),
            body,
        }]
    };
    let with_note = |body: String| {
        if note.trim().is_empty() {
            body
        } else {
            format!("{body}\n\nThe organisers wrote: {}", note.trim())
        }
    };
    match change {
        Change::Requested => organisers
            .iter()
            .filter(|o| o.as_str() != person)
            .map(|o| Message {
                recipient_id: o.clone(),
                kind: Kind::JoinRequested,
                title: "Someone asked to join your group".into(),
                body: format!(
                    "Someone asked to join {group_name}. Their request is waiting for an organiser."
                ),
            })
            .collect(),
        Change::Approved => to_person(
            Kind::RequestApproved,
            "Your request to join was accepted",
            with_note(format!("Your request to join {group_name} was accepted.")),
        ),
        Change::Declined => to_person(
            Kind::RequestDeclined,
            "About your request to join",
            with_note(format!(
                "Your request to join {group_name} was not accepted this time."
            )),
        ),
        Change::Invited => to_person(
            Kind::Invited,
            "You have been invited to a group",
            format!(
                "You have been invited to join {group_name}. Open the invitation to accept it."
            ),
        ),
        Change::Waitlisted => to_person(
            Kind::Waitlisted,
            "You are on a waiting list",
            format!(
                "{group_name} is full at the moment. We will tell you as soon as a place is free."
            ),
        ),
        Change::Promoted => to_person(
            Kind::PromotedFromWaitlist,
            "A place has opened up for you",
            format!("A place in {group_name} is now yours: you are a member."),
        ),
        Change::Removed | Change::Banned => to_person(
            Kind::Removed,
            "Your group membership has ended",
            with_note(format!(
                "The organisers of {group_name} ended your membership."
            )),
        ),
        Change::Ended if reason == "GROUP_ARCHIVED" => to_person(
            Kind::GroupClosed,
            "A group you belong to has closed",
            format!("{group_name} has closed, so your membership has ended."),
        ),
        // Consent withdrawn: the person did it themselves and was told on the spot.
        Change::Ended => Vec::new(),
    }
}

/// "Your turn is coming": for the person on `duty` at the meeting `meeting_key`
/// (its local date).
pub fn duty_due(person: &str, duty: &str, group_name: &str, meeting_key: &str) -> Message {
    let day = meeting_key.split('T').next().unwrap_or(meeting_key);
    Message {
        recipient_id: person.to_string(),
        kind: Kind::RotaReminder,
        title: "Your turn on the rota is coming up".into(),
        body: format!("You are down as {duty} at the {group_name} meeting on {day}."),
    }
}

/// What a skip or a swap by `changed_by` tells the others it hands turns
/// from or to: each `(meeting key, from, to)` (empty for nobody). Each person
/// gets one message with every meeting gained and lost; the one who asked for
/// it is told nothing.
pub fn turns_changed<'a>(
    duty: &str,
    group_name: &str,
    changed_by: &str,
    handovers: impl Iterator<Item = (&'a str, &'a str, &'a str)>,
) -> Vec<Message> {
    // Person → (days gained, days lost), people in the order first met.
    let mut people: Vec<(&str, Vec<&str>, Vec<&str>)> = Vec::new();
    let mut entry = |person: &'a str| -> usize {
        match people.iter().position(|(p, _, _)| *p == person) {
            Some(i) => i,
            None => {
                people.push((person, Vec::new(), Vec::new()));
                people.len() - 1
            }
        }
    };
    let mut changes: Vec<(usize, bool, &str)> = Vec::new();
    for (key, from, to) in handovers {
        let day = key.split('T').next().unwrap_or(key);
        if !to.is_empty() && to != changed_by {
            changes.push((entry(to), true, day));
        }
        if !from.is_empty() && from != changed_by {
            changes.push((entry(from), false, day));
        }
    }
    for (i, gained, day) in changes {
        if gained {
            people[i].1.push(day);
        } else {
            people[i].2.push(day);
        }
    }
    people
        .into_iter()
        .map(|(person, gained, lost)| {
            let mut parts = Vec::new();
            if !gained.is_empty() {
                parts.push(format!(
                    "you are now down as {duty} at the {group_name} meeting on {}",
                    gained.join(" and ")
                ));
            }
            if !lost.is_empty() {
                parts.push(format!(
                    "you are no longer down as {duty} on {}",
                    lost.join(" and ")
                ));
            }
            let said = parts.join("; ");
            Message {
                recipient_id: person.to_string(),
                kind: Kind::RotaReminder,
                title: "Your turns on the rota have changed".into(),
                body: format!(
                    "After a skip or a swap, {said}. \"My groups\" on the website shows the rota as it is now."
                ),
            }
        })
        .collect()
}

/// A step of a swap asked on a rota, as notifications tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapStep {
    /// Tells the person asked.
    Asked,
    /// Tells the one who asked.
    Declined,
    /// Tells the person who had been asked.
    Withdrawn,
}

/// The message for one step of a swap: `meeting_key` is the asker's turn,
/// `other_meeting_key` the asked person's. Names nobody: "My groups" does.
pub fn swap_request(
    step: SwapStep,
    asked_by: &str,
    asked_of: &str,
    duty: &str,
    group_name: &str,
    meeting_key: &str,
    other_meeting_key: &str,
) -> Message {
    let day = |key: &str| key.split('T').next().unwrap_or(key).to_string();
    let (mine, theirs) = (day(meeting_key), day(other_meeting_key));
    let (recipient, title, body) = match step {
        SwapStep::Asked => (
            asked_of,
            "A swap of turns is asked of you",
            format!(
                "Another volunteer on the {duty} rota of {group_name} asks to swap: you would take their turn on {mine}, and they would take yours on {theirs}. Nothing changes unless you agree. Agree or decline under \"My groups\" on the website."
            ),
        ),
        SwapStep::Declined => (
            asked_by,
            "Your swap of turns was declined",
            format!(
                "The swap you asked on the {duty} rota of {group_name} was declined: you are still down as {duty} on {mine}. You can skip that turn instead, or ask someone else under \"My groups\" on the website."
            ),
        ),
        SwapStep::Withdrawn => (
            asked_of,
            "A swap of turns was withdrawn",
            format!(
                "The swap you were asked about on the {duty} rota of {group_name} was withdrawn: you are still down as {duty} on {theirs}."
            ),
        ),
    };
    Message {
        recipient_id: recipient.to_string(),
        kind: Kind::RotaReminder,
        title: title.into(),
        body,
    }
}

/// What listings tells organisers about their group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupNews {
    Listed,
    /// An operator approved the proposal: the public sees it as being started.
    ProposalListed,
    Rejected {
        note: String,
    },
    Suspended {
        reason: String,
    },
    ReviewDue,
}

/// The message each organiser gets for `news` about `group_name`.
pub fn group_news(news: &GroupNews, group_name: &str, organisers: &[String]) -> Vec<Message> {
    let (kind, title, body) = match news {
        GroupNews::Listed => (
            Kind::GroupListed,
            "Your group is now listed",
            format!("{group_name} is published in the directory: people can find it and join."),
        ),
        GroupNews::ProposalListed => (
            Kind::GroupListed,
            "Your proposal is now listed",
            format!(
                "{group_name} is shown in the directory as a group being started: people can see it and follow it for news. Start the group when it is ready to meet."
            ),
        ),
        GroupNews::Rejected { note } => (
            Kind::GroupRejected,
            "Your listing needs changes",
            format!(
                "{group_name} was not published yet. The reviewer wrote: {}",
                note.trim()
            ),
        ),
        GroupNews::Suspended { reason } => (
            Kind::GroupSuspended,
            "Your listing has been paused",
            format!(
                "{group_name} is hidden from the directory for now. The reason given: {}",
                reason.trim()
            ),
        ),
        GroupNews::ReviewDue => (
            Kind::ReviewDue,
            "Please check your group's details",
            format!(
                "The details of {group_name} have not been confirmed for a while. Please check them and confirm they are right."
            ),
        ),
    };
    organisers
        .iter()
        .filter(|o| !o.is_empty())
        .map(|o| Message {
            recipient_id: o.clone(),
            kind,
            title: title.into(),
            body: body.clone(),
        })
        .collect()
}

/// Adds to a review-due reminder the one-click link, made for its recipient,
/// that confirms the listing is still right.
pub fn add_check_link(message: &mut Message, url: &str) {
    message.body.push_str(&format!(
        "\n\nIf they are still right, say so with one click (no need to sign in): {url}\n\nIf something has changed, edit them from the same page."
    ));
}

/// A change to a group's meetings, as people are told it (times already local).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeetingNews {
    /// The regular schedule, described ("Every Wednesday, 7:00pm–9:00pm"); empty
    /// when there are no regular meetings any more.
    ScheduleChanged {
        description: String,
    },
    Cancelled {
        date: String,
        note: String,
    },
    Moved {
        from: String,
        to: String,
        note: String,
    },
    Added {
        when: String,
        note: String,
    },
}

/// The message every member and follower of the group gets for `news`. Always
/// sent: people may travel to a meeting that no longer happens.
pub fn meeting_changed(news: &MeetingNews, group_name: &str, audience: &[String]) -> Vec<Message> {
    let with_note = |body: String, note: &str| {
        if note.trim().is_empty() {
            body
        } else {
            format!("{body} {}", note.trim())
        }
    };
    let body = match news {
        MeetingNews::ScheduleChanged { description } if description.is_empty() => {
            format!("{group_name} no longer has regular meetings.")
        }
        MeetingNews::ScheduleChanged { description } => {
            format!("{group_name} now meets: {description}.")
        }
        MeetingNews::Cancelled { date, note } => with_note(
            format!("The {group_name} meeting on {date} is cancelled."),
            note,
        ),
        MeetingNews::Moved { from, to, note } => with_note(
            format!("The {group_name} meeting on {from} has moved to {to}."),
            note,
        ),
        MeetingNews::Added { when, note } => with_note(
            format!("{group_name} has an extra meeting on {when}."),
            note,
        ),
    };
    audience
        .iter()
        .map(|person| Message {
            recipient_id: person.clone(),
            kind: Kind::MeetingChanged,
            title: "A meeting has changed".into(),
            body: body.clone(),
        })
        .collect()
}

/// An organiser's message to the group, for each of `audience`. The title is
/// generic (it may show on a lock screen); the group and its organiser's own
/// title are in the body.
pub fn announcement(
    audience: &[String],
    group_name: &str,
    title: &str,
    body: &str,
) -> Vec<Message> {
    let body = format!("{group_name}: {title}\n\n{body}");
    audience
        .iter()
        .map(|person| Message {
            recipient_id: person.clone(),
            kind: Kind::GroupAnnouncement,
            title: "News from one of your groups".into(),
            body: body.clone(),
        })
        .collect()
}

/// What a group's notice about its own running (`group.notice`) tells.
pub enum Notice<'a> {
    AgendaItem {
        meeting_key: &'a str,
        text: &'a str,
    },
    MeetingNotes {
        meeting_key: &'a str,
        text: &'a str,
    },
    Committee {
        committee: &'a str,
        title: &'a str,
        text: &'a str,
    },
    OnCommittee {
        committee: &'a str,
        duties: &'a str,
    },
    /// `role` ("organiser", "chair") held by `holder` for `months`.
    TermEnded {
        role: &'a str,
        holder: &'a str,
        months: i32,
    },
    /// `holder` has been the only organiser for `months`; `willing` members
    /// said what they would do.
    SoleOrganiser {
        holder: &'a str,
        months: i32,
        willing: i32,
    },
}

/// The messages of one notice to its `recipients`. Titles name no group.
pub fn group_notice(
    notice: &Notice<'_>,
    recipients: &[String],
    group_id: &str,
    group_name: &str,
) -> Vec<Message> {
    let day = |key: &str| key.split('T').next().unwrap_or(key).to_string();
    let forum = format!("Open the forum: /my/groups/{group_id}/forum");
    let one = |kind: Kind, title: &str, body: String| -> Vec<Message> {
        recipients
            .iter()
            .map(|p| Message {
                recipient_id: p.clone(),
                kind,
                title: title.into(),
                body: body.clone(),
            })
            .collect()
    };
    match notice {
        Notice::AgendaItem { meeting_key, text } => one(
            Kind::ForumUpdate,
            "A new item for a meeting's agenda",
            format!(
                "{group_name}, meeting on {}: a member added to the agenda\n\n{text}\n\n{forum}",
                day(meeting_key)
            ),
        ),
        Notice::MeetingNotes { meeting_key, text } => one(
            Kind::ForumUpdate,
            "Notes of a meeting",
            format!(
                "{group_name}, meeting on {}: the notes\n\n{text}\n\n{forum}",
                day(meeting_key)
            ),
        ),
        Notice::Committee {
            committee,
            title,
            text,
        } => one(
            Kind::CommitteeNotice,
            "A notice from your committee",
            format!("{group_name}, {committee}: {title}\n\n{text}"),
        ),
        Notice::OnCommittee { committee, duties } => one(
            Kind::CommitteeNotice,
            "You are on a committee",
            format!(
                "{group_name}: you are now on the committee \"{committee}\"{}. See it: /my/groups/{group_id}/forum#committees",
                if duties.is_empty() {
                    String::new()
                } else {
                    format!(", which looks after: {duties}")
                }
            ),
        ),
        Notice::TermEnded {
            role,
            holder,
            months,
        } => recipients
            .iter()
            .map(|p| {
                let body = match (p == holder, *role) {
                    (true, "chair") => format!(
                        "{group_name}: you have chaired the meetings for {months} months, the term the group set. \
                         Many hands make a group last: ask at the next meeting who would like to chair, \
                         put them on the chair rota, and help them start. The members' forum: \
                         /my/groups/{group_id}/forum"
                    ),
                    (true, _) => format!(
                        "{group_name}: you have been {role} for {months} months, the term the group set. \
                         Many hands make a group last: ask who would like to take it on \
                         (members who said they are willing are on the sharing page: \
                         /organise/{group_id}/sharing), give them the role, and stay on to help them start."
                    ),
                    (false, _) => format!(
                        "{group_name}: a term as {role} has ended ({months} months, as the group set). \
                         Time to choose who takes it on next: if you would, say so on your part in the group \
                         (/my/groups/{group_id}/sharing)."
                    ),
                };
                Message {
                    recipient_id: p.clone(),
                    kind: Kind::Handover,
                    title: "Time to hand a role on".into(),
                    body,
                }
            })
            .collect(),
        Notice::SoleOrganiser {
            holder,
            months,
            willing,
        } => vec![Message {
            recipient_id: holder.to_string(),
            kind: Kind::Handover,
            title: "Share the running of your group".into(),
            body: format!(
                "{group_name}: you have been its only organiser for {months} months. \
                 A co-organiser shares the load and keeps the group going when you cannot. \
                 {willing} members have said what they would be willing to do: see them at \
                 /organise/{group_id}/sharing and invite one to organise with you \
                 (/organise/{group_id}/people)."
            ),
        }],
    }
}

/// A visitor's message to the group's `organisers`. The title names no group;
/// the visitor's address is in the body only when they gave it for a reply.
pub fn organiser_contact(
    organisers: &[String],
    group_name: &str,
    sender_name: &str,
    message: &str,
    reply_to: &str,
) -> Vec<Message> {
    let who = if sender_name.is_empty() {
        "Someone"
    } else {
        sender_name
    };
    let reply = if reply_to.is_empty() {
        "They did not give an address for a reply.".to_string()
    } else {
        format!("They are happy for you to reply to {reply_to}")
    };
    let body = format!("{who} wrote to the organisers of {group_name}:\n\n{message}\n\n{reply}");
    organisers
        .iter()
        .map(|person| Message {
            recipient_id: person.clone(),
            kind: Kind::OrganiserContact,
            title: "Someone wrote about one of your groups".into(),
            body: body.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_term_ending_tells_the_holder_how_and_reminds_the_others() {
        let people = ["olive".to_string(), "alice".to_string()];
        let ended = Notice::TermEnded {
            role: "chair",
            holder: "olive",
            months: 12,
        };
        let msgs = group_notice(&ended, &people, "g1", "Stammering support");
        assert_eq!(msgs.len(), 2);
        assert!(msgs.iter().all(|m| m.kind == Kind::Handover));
        assert!(msgs.iter().all(|m| !m.title.contains("Stammering")));
        assert!(
            msgs[0]
                .body
                .contains("you have chaired the meetings for 12 months")
        );
        assert!(
            msgs[0].body.contains("/my/groups/g1/forum"),
            "a page a chair may open"
        );
        let organiser = Notice::TermEnded {
            role: "organiser",
            holder: "olive",
            months: 12,
        };
        let msgs_o = group_notice(&organiser, &people, "g1", "Stammering support");
        assert!(
            msgs_o[0]
                .body
                .contains("you have been organiser for 12 months")
        );
        assert!(msgs_o[0].body.contains("/organise/g1/sharing"));
        assert!(msgs[1].body.contains("a term as chair has ended"));
        let nudge = Notice::SoleOrganiser {
            holder: "olive",
            months: 12,
            willing: 3,
        };
        let msgs = group_notice(&nudge, &people, "g1", "Stammering support");
        assert_eq!(msgs.len(), 1, "only the organiser");
        assert!(msgs[0].body.contains("3 members"));
        let item = Notice::AgendaItem {
            meeting_key: "2027-01-05",
            text: "Room hire",
        };
        let msgs = group_notice(&item, &people, "g1", "Stammering support");
        assert!(msgs.iter().all(|m| m.kind == Kind::ForumUpdate
            && m.body.contains("2027-01-05")
            && m.body.contains("Room hire")
            && m.body.contains("/my/groups/g1/forum")));
    }

    #[test]
    fn welcome_for_the_member_note_for_other_organisers() {
        let msgs = member_joined(
            "p",
            "Diabetes support Nottingham",
            &["org".into(), "p".into()],
            None,
        );
        assert_eq!(msgs.len(), 2);
        assert!(!msgs[0].body.contains("How to join"));
        assert_eq!(
            (msgs[0].recipient_id.as_str(), msgs[0].kind),
            ("p", Kind::Welcome)
        );
        assert_eq!(
            (msgs[1].recipient_id.as_str(), msgs[1].kind),
            ("org", Kind::MemberJoined)
        );
    }

    #[test]
    fn titles_never_carry_the_group_name() {
        for m in member_joined("p", "Diabetes support Nottingham", &["org".into()], None) {
            assert!(!m.title.contains("Diabetes"), "{}", m.title);
            assert!(m.body.contains("Diabetes support Nottingham"));
        }
    }

    #[test]
    fn the_welcome_carries_the_joining_details_only_to_the_member() {
        let msgs = member_joined(
            "p",
            "Grief café",
            &["org".into()],
            Some("Room 4, ring the bell"),
        );
        assert!(
            msgs[0]
                .body
                .ends_with("How to join the meetings: Room 4, ring the bell")
        );
        assert!(
            !msgs[1].body.contains("Room 4"),
            "not in the organisers' note"
        );
        let blank = member_joined("p", "Grief café", &[], Some("  "));
        assert!(!blank[0].body.contains("How to join"));
    }

    #[test]
    fn requests_go_to_organisers_and_answers_to_the_person() {
        let organisers = ["org".to_string(), "co".to_string()];
        let asked = membership_changed(Change::Requested, "p", "Grief café", &organisers, "", "");
        let to: Vec<_> = asked.iter().map(|m| m.recipient_id.as_str()).collect();
        assert_eq!(to, vec!["org", "co"]);
        let yes = membership_changed(
            Change::Approved,
            "p",
            "Grief café",
            &organisers,
            "See you",
            "",
        );
        assert_eq!(yes.len(), 1);
        assert_eq!(
            (yes[0].recipient_id.as_str(), yes[0].kind),
            ("p", Kind::RequestApproved)
        );
        assert!(yes[0].body.contains("See you"));
        let withdrawn = membership_changed(
            Change::Ended,
            "p",
            "Grief café",
            &organisers,
            "",
            "CONSENT_WITHDRAWN",
        );
        assert!(withdrawn.is_empty());
    }

    #[test]
    fn no_title_of_any_change_names_the_group() {
        let organisers = ["org".to_string()];
        for change in [
            Change::Requested,
            Change::Approved,
            Change::Declined,
            Change::Invited,
            Change::Waitlisted,
            Change::Promoted,
            Change::Removed,
            Change::Banned,
            Change::Ended,
        ] {
            for m in membership_changed(
                change,
                "p",
                "Diabetes support",
                &organisers,
                "",
                "GROUP_ARCHIVED",
            ) {
                assert!(!m.title.contains("Diabetes"), "{change:?}: {}", m.title);
            }
        }
    }

    #[test]
    fn an_announcement_names_no_group_in_its_title() {
        let told = announcement(
            &["ann".to_string(), "bob".to_string()],
            "Alcohol recovery circle",
            "Christmas",
            "Mince pies",
        );
        assert_eq!(told.len(), 2);
        assert_eq!(told[0].title, "News from one of your groups");
        assert!(!told[0].title.contains("Alcohol"));
        assert_eq!(
            told[1].body,
            "Alcohol recovery circle: Christmas\n\nMince pies"
        );
        assert_eq!(told[0].kind.category(), Some(Category::GroupUpdates));
        assert!(told[0].kind.mutable() && !told[0].kind.time_critical());
    }

    #[test]
    fn each_step_of_a_swap_tells_the_other_person() {
        let step = |s| {
            swap_request(
                s,
                "ann",
                "bob",
                "chair",
                "Grief café",
                "2026-12-09",
                "2026-12-16T18:00",
            )
        };
        let asked = step(SwapStep::Asked);
        assert_eq!(asked.recipient_id, "bob");
        assert!(
            asked.body.contains(
                "you would take their turn on 2026-12-09, and they would take yours on 2026-12-16"
            ),
            "{}",
            asked.body
        );
        let declined = step(SwapStep::Declined);
        assert_eq!(declined.recipient_id, "ann");
        assert!(declined.body.contains("still down as chair on 2026-12-09"));
        let withdrawn = step(SwapStep::Withdrawn);
        assert_eq!(withdrawn.recipient_id, "bob");
        assert!(
            withdrawn
                .body
                .contains("still down as chair on 2026-12-16.")
        );
        assert!(
            [asked, declined, withdrawn]
                .iter()
                .all(|m| m.kind == Kind::RotaReminder
                    && !m.body.contains("ann")
                    && !m.body.contains("bob"))
        );
    }

    #[test]
    fn a_swap_tells_the_other_person_once_and_the_asker_nothing() {
        let handovers = [
            ("2026-12-09", "ann", "bob"),
            ("2026-12-16", "bob", "ann"),
            ("2026-12-23", "bob", ""),
        ];
        let told = turns_changed("chair", "Grief café", "ann", handovers.into_iter());
        assert_eq!(told.len(), 1, "{told:?}");
        assert_eq!(told[0].recipient_id, "bob");
        assert_eq!(
            told[0].body,
            "After a skip or a swap, you are now down as chair at the Grief café meeting on 2026-12-09; you are no longer down as chair on 2026-12-16 and 2026-12-23. \"My groups\" on the website shows the rota as it is now."
        );
        assert_eq!(told[0].kind, Kind::RotaReminder);
    }
}
