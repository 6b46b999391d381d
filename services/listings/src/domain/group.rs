//! The group card, its lifecycle and who may see or change it.

use selfhelp_core::caller::Caller;
use selfhelp_core::validation::Violations;
use serde::{Deserialize, Serialize};

use super::topic::TopicNode;
use selfhelp_core::postcode;

pub const MAX_NAME: usize = 120;
pub const MAX_SUMMARY: usize = 300;
pub const MAX_DESCRIPTION: usize = 10_000;
pub const MAX_TOPICS: usize = 10;
pub const MAX_VENUES: usize = 10;
pub const MAX_VENUE_TEXT: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Proposed,
    /// A proposal waiting for an operator before the public sees it.
    ProposalPendingReview,
    /// A reviewed proposal, shown to the public as a group being started.
    ProposalListed,
    Draft,
    PendingReview,
    Published,
    Suspended,
    Archived,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Proposed => "PROPOSED",
            Status::ProposalPendingReview => "PROPOSAL_PENDING_REVIEW",
            Status::ProposalListed => "PROPOSAL_LISTED",
            Status::Draft => "DRAFT",
            Status::PendingReview => "PENDING_REVIEW",
            Status::Published => "PUBLISHED",
            Status::Suspended => "SUSPENDED",
            Status::Archived => "ARCHIVED",
        }
    }

    pub const ALL: [Status; 8] = [
        Status::Proposed,
        Status::ProposalPendingReview,
        Status::ProposalListed,
        Status::Draft,
        Status::PendingReview,
        Status::Published,
        Status::Suspended,
        Status::Archived,
    ];

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Statuses anyone may see: a published group, and a reviewed proposal.
    pub fn is_public(self) -> bool {
        matches!(self, Status::Published | Status::ProposalListed)
    }

    /// Statuses an operator's review is waiting for.
    pub const AWAITING_REVIEW: [Status; 2] = [Status::PendingReview, Status::ProposalPendingReview];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    InPerson,
    Online,
    Phone,
    Hybrid,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::InPerson => "IN_PERSON",
            Format::Online => "ONLINE",
            Format::Phone => "PHONE",
            Format::Hybrid => "HYBRID",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        [
            Format::InPerson,
            Format::Online,
            Format::Phone,
            Format::Hybrid,
        ]
        .into_iter()
        .find(|f| f.as_str() == s)
    }

    /// Formats that meet somewhere need a venue.
    pub fn needs_venue(self) -> bool {
        matches!(self, Format::InPerson | Format::Hybrid)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinPolicy {
    Open,
    Approval,
    InviteOnly,
}

impl JoinPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            JoinPolicy::Open => "OPEN",
            JoinPolicy::Approval => "APPROVAL",
            JoinPolicy::InviteOnly => "INVITE_ONLY",
        }
    }

    pub fn parse(s: &str) -> Option<JoinPolicy> {
        [
            JoinPolicy::Open,
            JoinPolicy::Approval,
            JoinPolicy::InviteOnly,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Venue {
    pub name: String,
    pub address: String,
    pub town: String,
    pub postcode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    #[serde(default)]
    pub accessibility: String,
    #[serde(default)]
    pub travel_notes: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CostKind {
    Free,
    Donation,
    Fee,
}

/// Public role contact: a name or role, not a member's private details.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub name: String,
    pub email: String,
    pub phone: String,
    pub website: String,
}

/// The rest of the card: who it is for, where, how to reach it, what it costs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Details {
    pub eligibility: String,
    pub minimum_age: Option<u8>,
    pub maximum_age: Option<u8>,
    pub carers_welcome: bool,
    pub family_welcome: bool,
    pub area_served: String,
    pub contact: Contact,
    pub cost: Option<CostKind>,
    pub cost_description: String,
    pub languages: Vec<String>,
    pub capacity: Option<u32>,
    /// The welcome a new member gets carries the joining details.
    pub welcome_with_joining_details: bool,
}

/// The details as a client sent them (numbers not yet checked).
#[derive(Debug, Clone, Default)]
pub struct DetailsDraft {
    pub eligibility: String,
    pub minimum_age: i32,
    pub maximum_age: i32,
    pub carers_welcome: bool,
    pub family_welcome: bool,
    pub area_served: String,
    pub contact: Contact,
    pub cost: Option<CostKind>,
    /// The client sent a cost kind this version does not know.
    pub cost_unknown: bool,
    pub cost_description: String,
    pub languages: Vec<String>,
    pub capacity: i32,
    pub welcome_with_joining_details: bool,
}

pub const MAX_AGE: i32 = 120;
pub const MAX_CAPACITY: i32 = 100_000;
pub const MAX_JOINING_DETAILS: usize = 2_000;

/// A group as a client asked to create it, before checks.
#[derive(Debug, Clone)]
pub struct GroupDraft {
    pub name: String,
    pub summary: String,
    pub description: String,
    pub topics: Vec<String>,
    /// `None` when the client sent a value this version does not know.
    pub format: Option<Format>,
    pub join_policy: Option<JoinPolicy>,
    pub venues: Vec<Venue>,
    pub details: DetailsDraft,
    pub joining_details: String,
}

/// A group that passed every check, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewGroup {
    pub name: String,
    pub summary: String,
    pub description: String,
    pub topics: Vec<String>,
    pub format: Format,
    pub join_policy: JoinPolicy,
    pub venues: Vec<Venue>,
    pub details: Details,
    /// Member-only (e.g. a video link).
    pub joining_details: String,
}

/// Checks every field, naming each one that is wrong. Topics must be current
/// terms of the region's `taxonomy`.
pub fn validate(draft: GroupDraft, taxonomy: &[TopicNode]) -> Result<NewGroup, Violations> {
    let mut v = Violations::new();
    v.line("name", &draft.name, true, MAX_NAME);
    v.line("summary", &draft.summary, false, MAX_SUMMARY);
    v.text("description", &draft.description, false, MAX_DESCRIPTION);

    if draft.topics.len() > MAX_TOPICS {
        v.add("topics", format!("at most {MAX_TOPICS} topics"));
    }
    let mut topics = Vec::new();
    for (i, topic) in draft.topics.iter().enumerate() {
        let field = format!("topics[{i}]");
        let code = topic.trim().to_ascii_lowercase();
        let mut ok = Violations::new();
        super::topic::check_code(&mut ok, &field, &code);
        if !ok.is_empty() {
            v.add(
                field,
                "must be a topic code: a-z, 0-9 and '-', at most 64 characters",
            );
            continue;
        }
        match taxonomy.iter().find(|n| n.code == code) {
            None => v.add(field, "is not a topic of this region (see ListTopics)"),
            Some(term) if term.retired => {
                let instead = term
                    .replaced_by
                    .as_ref()
                    .and_then(|r| taxonomy.iter().find(|n| &n.id == r))
                    .map(|n| format!("; use {}", n.code))
                    .unwrap_or_default();
                v.add(field, format!("is retired{instead}"));
            }
            Some(_) if topics.contains(&code) => {}
            Some(_) => topics.push(code),
        }
    }

    if draft.format.is_none() {
        v.add("format", "must be IN_PERSON, ONLINE, PHONE or HYBRID");
    }
    if draft.join_policy.is_none() {
        v.add("join_policy", "must be OPEN, APPROVAL or INVITE_ONLY");
    }

    if draft.venues.len() > MAX_VENUES {
        v.add("venues", format!("at most {MAX_VENUES} venues"));
    }
    if draft.format.is_some_and(Format::needs_venue) && draft.venues.is_empty() {
        v.add(
            "venues",
            "a group that meets in person needs at least one venue",
        );
    }
    let mut venues = Vec::new();
    for (i, venue) in draft.venues.iter().enumerate() {
        v.line(
            &format!("venues[{i}].name"),
            &venue.name,
            false,
            MAX_VENUE_TEXT,
        );
        v.text(
            &format!("venues[{i}].address"),
            &venue.address,
            false,
            MAX_VENUE_TEXT,
        );
        v.line(
            &format!("venues[{i}].town"),
            &venue.town,
            true,
            MAX_VENUE_TEXT,
        );
        v.text(
            &format!("venues[{i}].accessibility"),
            &venue.accessibility,
            false,
            MAX_VENUE_TEXT,
        );
        v.text(
            &format!("venues[{i}].travel_notes"),
            &venue.travel_notes,
            false,
            MAX_VENUE_TEXT,
        );
        match (venue.latitude, venue.longitude) {
            (Some(lat), Some(lon)) => {
                if !(-90.0..=90.0).contains(&lat) {
                    v.add(
                        format!("venues[{i}].latitude"),
                        "must be between -90 and 90",
                    );
                }
                if !(-180.0..=180.0).contains(&lon) {
                    v.add(
                        format!("venues[{i}].longitude"),
                        "must be between -180 and 180",
                    );
                }
            }
            (None, None) => {}
            (Some(_), None) => v.add(
                format!("venues[{i}].longitude"),
                "give both latitude and longitude",
            ),
            (None, Some(_)) => v.add(
                format!("venues[{i}].latitude"),
                "give both latitude and longitude",
            ),
        }
        match postcode::normalise(&venue.postcode) {
            Some(postcode) => venues.push(Venue {
                name: venue.name.trim().to_string(),
                address: venue.address.trim().to_string(),
                town: venue.town.trim().to_string(),
                postcode,
                latitude: venue.latitude,
                longitude: venue.longitude,
                accessibility: venue.accessibility.trim().to_string(),
                travel_notes: venue.travel_notes.trim().to_string(),
            }),
            None => v.add(
                format!("venues[{i}].postcode"),
                "must be a UK postcode such as NG1 5FS",
            ),
        }
    }

    let details = validate_details(&mut v, &draft.details);
    v.text(
        "joining_details",
        &draft.joining_details,
        false,
        MAX_JOINING_DETAILS,
    );

    v.into_result()?;
    Ok(NewGroup {
        name: draft.name.trim().to_string(),
        summary: draft.summary.trim().to_string(),
        description: draft.description.trim().to_string(),
        topics,
        format: draft.format.expect("checked above"),
        join_policy: draft.join_policy.expect("checked above"),
        venues,
        details,
        joining_details: draft.joining_details.trim().to_string(),
    })
}

fn validate_details(v: &mut Violations, d: &DetailsDraft) -> Details {
    v.text("eligibility.description", &d.eligibility, false, 1_000);
    let age = |v: &mut Violations, field: &str, n: i32| match n {
        0 => None,
        n if (1..=MAX_AGE).contains(&n) => Some(n as u8),
        _ => {
            v.add(field, format!("must be between 0 (no limit) and {MAX_AGE}"));
            None
        }
    };
    let minimum_age = age(v, "eligibility.minimum_age", d.minimum_age);
    let maximum_age = age(v, "eligibility.maximum_age", d.maximum_age);
    if let (Some(min), Some(max)) = (minimum_age, maximum_age)
        && min > max
    {
        v.add(
            "eligibility.maximum_age",
            "must not be below the minimum age",
        );
    }
    v.line("area_served", &d.area_served, false, 200);
    let c = &d.contact;
    v.line("contact.name", &c.name, false, 100);
    let email = c.email.trim();
    let email_ok = email.is_empty()
        || (email.len() <= 254
            && !email.contains(char::is_whitespace)
            && email
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.')));
    if !email_ok {
        v.add(
            "contact.email",
            "must be an email address such as hello@example.org",
        );
    }
    let phone = c.phone.trim();
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    let phone_ok = phone.is_empty()
        || ((10..=15).contains(&digits)
            && phone
                .chars()
                .all(|ch| ch.is_ascii_digit() || " +()-".contains(ch)));
    if !phone_ok {
        v.add(
            "contact.phone",
            "must be a phone number such as 0115 123 4567",
        );
    }
    let website = c.website.trim();
    let website_ok = website.is_empty()
        || (website.len() <= 500
            && (website.starts_with("https://") || website.starts_with("http://"))
            && !website.contains(char::is_whitespace));
    if !website_ok {
        v.add(
            "contact.website",
            "must be a web address starting with https://",
        );
    }
    if d.cost_unknown {
        v.add(
            "cost.kind",
            "must be COST_KIND_FREE, COST_KIND_DONATION or COST_KIND_FEE",
        );
    }
    let cost = d.cost;
    v.text("cost.description", &d.cost_description, false, 300);
    if d.languages.len() > 10 {
        v.add("languages", "at most 10 languages");
    }
    let mut languages = Vec::new();
    for (i, code) in d.languages.iter().enumerate() {
        let code = code.trim().to_ascii_lowercase();
        if (2..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_lowercase()) {
            if !languages.contains(&code) {
                languages.push(code);
            }
        } else {
            v.add(
                format!("languages[{i}]"),
                "must be an ISO 639 language code such as en, cy or pl",
            );
        }
    }
    let capacity = match d.capacity {
        0 => None,
        n if (1..=MAX_CAPACITY).contains(&n) => Some(n as u32),
        _ => {
            v.add(
                "capacity",
                format!("must be between 0 (no limit) and {MAX_CAPACITY}"),
            );
            None
        }
    };
    Details {
        eligibility: d.eligibility.trim().to_string(),
        minimum_age,
        maximum_age,
        carers_welcome: d.carers_welcome,
        family_welcome: d.family_welcome,
        area_served: d.area_served.trim().to_string(),
        contact: Contact {
            name: c.name.trim().to_string(),
            email: email.to_string(),
            phone: phone.to_string(),
            website: website.to_string(),
        },
        cost,
        cost_description: d.cost_description.trim().to_string(),
        languages,
        capacity,
        welcome_with_joining_details: d.welcome_with_joining_details,
    }
}

/// Who may see a group that is not public: its organisers and the region's operators.
pub fn can_view(
    status: Status,
    region: &str,
    organisers: &[String],
    caller: Option<&Caller>,
) -> bool {
    status.is_public() || caller.is_some_and(|c| can_manage(region, organisers, c))
}

/// Organisers of the group, and operators of its region.
pub fn can_manage(region: &str, organisers: &[String], caller: &Caller) -> bool {
    caller.is_operator_of(region)
        || (caller.region == region && organisers.contains(&caller.person_id))
}

/// Lifecycle steps this version supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// PROPOSED or PROPOSAL_LISTED -> DRAFT: the group is ready to be listed.
    Start,
    Submit,
    Approve,
    Reject,
    Suspend,
    Reinstate,
    /// Final, from any other status.
    Archive,
}

impl Transition {
    fn verb(self) -> &'static str {
        match self {
            Transition::Start => "start",
            Transition::Submit => "submit",
            Transition::Approve | Transition::Reject => "review",
            Transition::Suspend => "suspend",
            Transition::Reinstate => "reinstate",
            Transition::Archive => "archive",
        }
    }
}

/// The status after `transition`, or why it is not allowed from `from`.
pub fn next_status(from: Status, transition: Transition) -> Result<Status, String> {
    use Status::*;
    match (from, transition) {
        (Proposed | ProposalListed, Transition::Start) => Ok(Draft),
        (Draft, Transition::Submit) => Ok(PendingReview),
        (PendingReview, Transition::Approve) => Ok(Published),
        (PendingReview, Transition::Reject) => Ok(Draft),
        // A proposal is reviewed before the public sees it, like a listing.
        (Proposed, Transition::Submit) => Ok(ProposalPendingReview),
        (ProposalPendingReview, Transition::Approve) => Ok(ProposalListed),
        (ProposalPendingReview, Transition::Reject) => Ok(Proposed),
        (Published, Transition::Suspend) => Ok(Suspended),
        (Suspended, Transition::Reinstate) => Ok(Published),
        (from, Transition::Archive) if from != Archived => Ok(Archived),
        (from, t) => Err(format!(
            "cannot {} a group that is {}",
            t.verb(),
            from.as_str()
        )),
    }
}

/// What the public reads first about a group: an organiser's change to any of
/// these, on a listing the public sees, is checked by an operator.
pub const SIGNIFICANT_FIELDS: [&str; 4] = ["name", "summary", "description", "contact"];

/// True when `changes` touch a [`SIGNIFICANT_FIELDS`] field.
pub fn is_significant(changes: &[FieldChange]) -> bool {
    changes
        .iter()
        .any(|c| SIGNIFICANT_FIELDS.contains(&c.field))
}

/// Where a listing the public sees goes when a significant edit sends it back
/// to review; `None` for one the public does not see.
pub fn back_to_review(from: Status) -> Option<Status> {
    match from {
        Status::Published => Some(Status::PendingReview),
        Status::ProposalListed => Some(Status::ProposalPendingReview),
        _ => None,
    }
}

/// `current` with the `fields` (as [`changed_fields`] names them) of `edit`:
/// a held edit approved later changes what it changed, not what others
/// changed meanwhile.
pub fn with_fields_of(current: &NewGroup, edit: &NewGroup, fields: &[&str]) -> NewGroup {
    let mut out = current.clone();
    let (to, from) = (&mut out.details, &edit.details);
    for field in fields {
        match *field {
            "name" => out.name = edit.name.clone(),
            "summary" => out.summary = edit.summary.clone(),
            "description" => out.description = edit.description.clone(),
            "topics" => out.topics = edit.topics.clone(),
            "format" => out.format = edit.format,
            "join_policy" => out.join_policy = edit.join_policy,
            "venues" => out.venues = edit.venues.clone(),
            "eligibility" => {
                to.eligibility = from.eligibility.clone();
                to.minimum_age = from.minimum_age;
                to.maximum_age = from.maximum_age;
                to.carers_welcome = from.carers_welcome;
                to.family_welcome = from.family_welcome;
            }
            "area_served" => to.area_served = from.area_served.clone(),
            "contact" => to.contact = from.contact.clone(),
            "cost" => {
                to.cost = from.cost;
                to.cost_description = from.cost_description.clone();
            }
            "languages" => to.languages = from.languages.clone(),
            "capacity" => to.capacity = from.capacity,
            "joining_details" => {
                out.joining_details = edit.joining_details.clone();
                to.welcome_with_joining_details = from.welcome_with_joining_details;
            }
            _ => {}
        }
    }
    out
}

/// The editable fields of a card, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub field: &'static str,
    pub old_json: String,
    pub new_json: String,
}

/// Which fields differ between two versions of a card, with JSON of both values.
pub fn changed_fields(old: &NewGroup, new: &NewGroup) -> Vec<FieldChange> {
    fn json<T: Serialize + ?Sized>(v: &T) -> String {
        serde_json::to_string(v).expect("card fields serialise")
    }
    let mut out = Vec::new();
    let mut check = |field: &'static str, a: String, b: String| {
        if a != b {
            out.push(FieldChange {
                field,
                old_json: a,
                new_json: b,
            });
        }
    };
    check("name", json(&old.name), json(&new.name));
    check("summary", json(&old.summary), json(&new.summary));
    check(
        "description",
        json(&old.description),
        json(&new.description),
    );
    check("topics", json(&old.topics), json(&new.topics));
    check(
        "format",
        json(old.format.as_str()),
        json(new.format.as_str()),
    );
    check(
        "join_policy",
        json(old.join_policy.as_str()),
        json(new.join_policy.as_str()),
    );
    check("venues", json(&old.venues), json(&new.venues));
    let (a, b) = (&old.details, &new.details);
    let eligibility = |d: &Details| {
        json(&(
            &d.eligibility,
            d.minimum_age,
            d.maximum_age,
            d.carers_welcome,
            d.family_welcome,
        ))
    };
    check("eligibility", eligibility(a), eligibility(b));
    check("area_served", json(&a.area_served), json(&b.area_served));
    check("contact", json(&a.contact), json(&b.contact));
    check(
        "cost",
        json(&(a.cost, &a.cost_description)),
        json(&(b.cost, &b.cost_description)),
    );
    check("languages", json(&a.languages), json(&b.languages));
    check("capacity", json(&a.capacity), json(&b.capacity));
    check(
        "joining_details",
        json(&(&old.joining_details, a.welcome_with_joining_details)),
        json(&(&new.joining_details, b.welcome_with_joining_details)),
    );
    out
}

/// Who may manage a listing: everyone membership reports as organiser or
/// co-organiser, plus the creator unless membership says otherwise. When every
/// organiser has gone (left, removed, banned, erased), no one is named and the
/// listing is the region's operators' alone: the creator does not come back.
pub fn organisers(creator: &str, roles: &[(String, String)]) -> Vec<String> {
    let manages = |role: &str| role == "ORGANISER" || role == "CO_ORGANISER";
    let mut out = Vec::new();
    let creator_role = roles.iter().find(|(person, _)| person == creator);
    // An erased creator is no one (empty): the group is left to its other
    // organisers and the region's operators.
    if !creator.is_empty() && creator_role.is_none_or(|(_, role)| manages(role)) {
        out.push(creator.to_string());
    }
    let mut others: Vec<&String> = roles
        .iter()
        .filter(|(person, role)| person != creator && manages(role))
        .map(|(person, _)| person)
        .collect();
    others.sort();
    out.extend(others.into_iter().cloned());
    out
}

pub const DAY_MS: i64 = 86_400_000;

/// Whether details confirmed at `assured_at_ms` still count as checked at `now_ms`.
pub fn recently_checked(assured_at_ms: Option<i64>, now_ms: i64, max_age_days: i64) -> bool {
    assured_at_ms.is_some_and(|at| now_ms - at <= max_age_days * DAY_MS)
}

/// Whether a published group confirmed at `assured_at_ms` is still found by
/// search at `now_ms`: until `unchecked_days` (the freshness age plus its
/// grace) have passed. A group never checked (imported without a date) stays:
/// only a check that lapsed takes a group out.
pub fn in_search(assured_at_ms: Option<i64>, now_ms: i64, unchecked_days: i64) -> bool {
    assured_at_ms.is_none_or(|at| now_ms - at <= unchecked_days * DAY_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> GroupDraft {
        GroupDraft {
            name: "Bereavement support".into(),
            summary: "Meet others".into(),
            description: "Weekly".into(),
            topics: vec!["bereavement".into(), "Bereavement".into()],
            format: Some(Format::InPerson),
            join_policy: Some(JoinPolicy::Open),
            venues: vec![Venue {
                name: "Hall".into(),
                address: "1 Road".into(),
                town: "Nottingham".into(),
                postcode: "ng1 5fs".into(),
                latitude: Some(52.95),
                longitude: Some(-1.15),
                accessibility: "Step-free".into(),
                travel_notes: String::new(),
            }],
            details: DetailsDraft {
                minimum_age: 18,
                contact: Contact {
                    name: "Coordinator".into(),
                    email: "hello@example.org".into(),
                    ..Default::default()
                },
                cost: Some(CostKind::Donation),
                languages: vec!["EN".into(), "pl".into()],
                ..Default::default()
            },
            joining_details: String::new(),
        }
    }

    #[test]
    fn card_details_are_checked() {
        let g = validate(draft(), &taxonomy()).unwrap();
        assert_eq!(g.details.languages, vec!["en", "pl"]);
        assert_eq!(g.details.minimum_age, Some(18));
        let mut d = draft();
        d.details.minimum_age = 30;
        d.details.maximum_age = 20;
        d.details.contact.email = "not an email".into();
        d.details.contact.phone = "12".into();
        d.details.contact.website = "javascript:alert(1)".into();
        d.details.cost_unknown = true;
        d.details.languages = vec!["English".into()];
        d.details.capacity = -1;
        d.venues[0].longitude = None;
        let fields: Vec<String> = validate(d, &taxonomy())
            .unwrap_err()
            .fields()
            .map(String::from)
            .collect();
        assert_eq!(
            fields,
            vec![
                "venues[0].longitude",
                "eligibility.maximum_age",
                "contact.email",
                "contact.phone",
                "contact.website",
                "cost.kind",
                "languages[0]",
                "capacity"
            ]
        );
    }

    fn taxonomy() -> Vec<TopicNode> {
        let node = |code: &str, retired: bool| TopicNode {
            id: code.into(),
            code: code.into(),
            parent_id: None,
            retired,
            replaced_by: retired.then(|| "bereavement".to_string()),
        };
        vec![node("bereavement", false), node("grief", true)]
    }

    #[test]
    fn valid_group_is_normalised() {
        let g = validate(draft(), &taxonomy()).unwrap();
        assert_eq!(g.topics, vec!["bereavement"]);
        assert_eq!(g.venues[0].postcode, "NG1 5FS");
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut d = draft();
        d.name = " ".into();
        d.description = "x".repeat(MAX_DESCRIPTION + 1);
        d.format = None;
        d.venues[0].postcode = "nope".into();
        d.topics.push("Not a slug!".into());
        d.topics.push("unknown".into());
        d.topics.push("grief".into());
        let err = validate(d, &taxonomy()).unwrap_err();
        let fields: Vec<String> = err.fields().map(String::from).collect();
        assert_eq!(
            fields,
            vec![
                "name",
                "description",
                "topics[2]",
                "topics[3]",
                "topics[4]",
                "format",
                "venues[0].postcode"
            ]
        );
        assert!(
            err.iter()
                .any(|(_, why)| why.contains("is retired; use bereavement"))
        );
    }

    #[test]
    fn in_person_needs_a_venue_online_does_not() {
        let mut d = draft();
        d.venues.clear();
        assert!(validate(d.clone(), &taxonomy()).is_err());
        d.format = Some(Format::Online);
        assert!(validate(d, &taxonomy()).is_ok());
    }

    #[test]
    fn a_proposal_is_reviewed_before_the_public_sees_it() {
        use Status::*;
        let step = next_status;
        assert_eq!(
            step(Proposed, Transition::Submit),
            Ok(ProposalPendingReview)
        );
        assert_eq!(
            step(ProposalPendingReview, Transition::Approve),
            Ok(ProposalListed)
        );
        assert_eq!(
            step(ProposalPendingReview, Transition::Reject),
            Ok(Proposed)
        );
        assert_eq!(step(ProposalListed, Transition::Start), Ok(Draft));
        assert!(step(ProposalPendingReview, Transition::Start).is_err());
        assert!(step(ProposalListed, Transition::Approve).is_err());
        assert!(step(ProposalListed, Transition::Suspend).is_err());
        assert_eq!(step(ProposalListed, Transition::Archive), Ok(Archived));
        let organisers = vec!["alice".to_string()];
        assert!(can_view(ProposalListed, "notts", &organisers, None));
        assert!(!can_view(ProposalPendingReview, "notts", &organisers, None));
        assert!(!can_view(Proposed, "notts", &organisers, None));
    }

    #[test]
    fn lifecycle() {
        assert_eq!(
            next_status(Status::Draft, Transition::Submit),
            Ok(Status::PendingReview)
        );
        assert_eq!(
            next_status(Status::PendingReview, Transition::Approve),
            Ok(Status::Published)
        );
        assert_eq!(
            next_status(Status::PendingReview, Transition::Reject),
            Ok(Status::Draft)
        );
        assert!(next_status(Status::Published, Transition::Submit).is_err());
        assert!(next_status(Status::Draft, Transition::Approve).is_err());
        assert_eq!(
            next_status(Status::Proposed, Transition::Start),
            Ok(Status::Draft)
        );
        assert_eq!(
            next_status(Status::Published, Transition::Suspend),
            Ok(Status::Suspended)
        );
        assert_eq!(
            next_status(Status::Suspended, Transition::Reinstate),
            Ok(Status::Published)
        );
        assert!(next_status(Status::Draft, Transition::Suspend).is_err());
        assert_eq!(
            next_status(Status::Suspended, Transition::Archive),
            Ok(Status::Archived)
        );
        assert!(next_status(Status::Archived, Transition::Archive).is_err());
        assert_eq!(
            next_status(Status::Archived, Transition::Reinstate).unwrap_err(),
            "cannot reinstate a group that is ARCHIVED"
        );
    }

    #[test]
    fn edits_name_the_changed_fields() {
        let old = validate(draft(), &taxonomy()).unwrap();
        let mut new = old.clone();
        new.name = "Bereavement circle".into();
        new.format = Format::Hybrid;
        let changes = changed_fields(&old, &new);
        let fields: Vec<_> = changes.iter().map(|c| c.field).collect();
        assert_eq!(fields, vec!["name", "format"]);
        assert_eq!(changes[1].old_json, "\"IN_PERSON\"");
        assert!(changed_fields(&old, &old).is_empty());
    }

    #[test]
    fn name_text_and_contact_are_significant_the_rest_is_not() {
        let old = validate(draft(), &taxonomy()).unwrap();
        let mut new = old.clone();
        new.details.languages = vec!["pl".into()];
        new.format = Format::Hybrid;
        assert!(!is_significant(&changed_fields(&old, &new)));
        new.details.contact.website = "https://elsewhere.example".into();
        assert!(is_significant(&changed_fields(&old, &new)));
        let mut renamed = old.clone();
        renamed.summary = "Something else entirely".into();
        assert!(is_significant(&changed_fields(&old, &renamed)));
        assert_eq!(
            back_to_review(Status::Published),
            Some(Status::PendingReview)
        );
        assert_eq!(
            back_to_review(Status::ProposalListed),
            Some(Status::ProposalPendingReview)
        );
        assert_eq!(
            back_to_review(Status::Draft),
            None,
            "not public: edits apply"
        );
    }

    #[test]
    fn a_held_edit_changes_only_its_own_fields() {
        let original = validate(draft(), &taxonomy()).unwrap();
        let mut held = original.clone();
        held.name = "Renamed circle".into();
        held.details.contact.phone = "0115 000 0000".into();
        let fields: Vec<&str> = changed_fields(&original, &held)
            .iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, vec!["name", "contact"]);
        // Meanwhile the languages changed, directly.
        let mut current = original.clone();
        current.details.languages = vec!["pl".into()];
        let merged = with_fields_of(&current, &held, &fields);
        assert_eq!(merged.name, "Renamed circle");
        assert_eq!(merged.details.contact.phone, "0115 000 0000");
        assert_eq!(merged.details.languages, vec!["pl".to_string()], "kept");
        // Every field `changed_fields` names is one `with_fields_of` carries.
        let mut everything = held.clone();
        everything.summary = "s".into();
        everything.description = "d".into();
        everything.topics = vec![];
        everything.format = Format::Online;
        everything.venues = vec![];
        everything.details.eligibility = "Over 18s".into();
        everything.details.area_served = "Gedling".into();
        everything.details.cost_description = "£2".into();
        everything.details.languages = vec!["cy".into()];
        everything.details.capacity = Some(9);
        everything.joining_details = "room 2".into();
        let all: Vec<&str> = changed_fields(&original, &everything)
            .iter()
            .map(|c| c.field)
            .collect();
        assert!(
            changed_fields(&with_fields_of(&original, &everything, &all), &everything).is_empty()
        );
    }

    #[test]
    fn organisers_follow_membership_roles() {
        let r = |p: &str, role: &str| (p.to_string(), role.to_string());
        assert_eq!(organisers("alice", &[]), vec!["alice"]);
        assert_eq!(
            organisers("alice", &[r("bob", "CO_ORGANISER"), r("carol", "MEMBER")]),
            vec!["alice", "bob"]
        );
        assert_eq!(
            organisers("alice", &[r("alice", "MEMBER"), r("bob", "ORGANISER")]),
            vec!["bob"]
        );
        assert_eq!(
            organisers("alice", &[r("alice", "NONE")]),
            Vec::<String>::new(),
            "a creator who left (or was banned) does not come back"
        );
    }

    #[test]
    fn freshness() {
        let day = 86_400_000;
        assert!(recently_checked(Some(0), 365 * day, 365));
        assert!(!recently_checked(Some(0), 366 * day, 365));
        assert!(!recently_checked(None, 0, 365));
        assert!(in_search(Some(0), 395 * day, 395));
        assert!(!in_search(Some(0), 396 * day, 395));
        assert!(
            in_search(None, 396 * day, 395),
            "never checked is not lapsed"
        );
    }

    #[test]
    fn visibility() {
        let organisers = vec!["alice".to_string()];
        let alice = Caller {
            person_id: "alice".into(),
            region: "notts".into(),
            roles: vec![],
            expires_at: i64::MAX,
        };
        let bob = Caller {
            person_id: "bob".into(),
            region: "notts".into(),
            roles: vec![],
            expires_at: i64::MAX,
        };
        let op = Caller {
            person_id: "op".into(),
            region: "notts".into(),
            roles: vec!["operator".into()],
            expires_at: i64::MAX,
        };
        let far_op = Caller {
            person_id: "op2".into(),
            region: "leeds".into(),
            roles: vec!["operator".into()],
            expires_at: i64::MAX,
        };
        assert!(can_view(Status::Draft, "notts", &organisers, Some(&alice)));
        assert!(can_view(Status::Draft, "notts", &organisers, Some(&op)));
        assert!(!can_view(Status::Draft, "notts", &organisers, Some(&bob)));
        assert!(!can_view(
            Status::Draft,
            "notts",
            &organisers,
            Some(&far_op)
        ));
        assert!(!can_view(Status::Draft, "notts", &organisers, None));
        assert!(can_view(Status::Published, "notts", &organisers, None));
    }
}
