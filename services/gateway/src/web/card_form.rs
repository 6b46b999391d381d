//! A group's card as a web form: what an organiser types when they propose,
//! list or edit a group, read back from the posted pairs (topics and languages
//! repeat), turned into listings' requests, and shown again with the fields a
//! service refused named as the form names them.

use selfhelp_proto::listings::v1 as pb;
use serde::Serialize;

use super::forms::FieldError;

/// The card as posted (every value as typed).
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct CardForm {
    pub csrf: String,
    /// "draft" to keep it, "submit" to send it for review as well.
    pub action: String,
    /// The version the edit was made against (edits only).
    pub version: String,
    /// Ticked: the group is being started, collecting interest first.
    pub proposed: bool,
    pub name: String,
    pub summary: String,
    pub description: String,
    pub topics: Vec<String>,
    pub format: String,
    pub join_policy: String,
    pub join_question: String,
    /// The places it meets, in order, none of them blank: the form posts
    /// `venue-{i}-{part}` for each, and one blank more to add a place.
    pub venues: Vec<VenueForm>,
    pub who_for: String,
    pub min_age: String,
    pub max_age: String,
    pub carers_welcome: bool,
    pub family_welcome: bool,
    pub area_served: String,
    pub contact_name: String,
    pub contact_email: String,
    pub contact_phone: String,
    pub contact_website: String,
    pub cost_kind: String,
    pub cost_description: String,
    /// Language codes, separated by commas or spaces ("en, pl").
    pub languages: String,
    pub capacity: String,
    pub joining_details: String,
    pub welcome_with_joining_details: bool,
}

/// One place a group meets, as typed.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct VenueForm {
    pub name: String,
    pub address: String,
    pub town: String,
    pub postcode: String,
    pub accessibility: String,
    pub travel_notes: String,
}

/// Listings keeps at most this many venues per group.
pub(crate) const MAX_VENUES: usize = 10;

impl VenueForm {
    fn part(&mut self, part: &str) -> Option<&mut String> {
        Some(match part {
            "name" => &mut self.name,
            "address" => &mut self.address,
            "town" => &mut self.town,
            "postcode" => &mut self.postcode,
            "accessibility" => &mut self.accessibility,
            "travel_notes" => &mut self.travel_notes,
            _ => return None,
        })
    }

    fn is_blank(&self) -> bool {
        [
            &self.name,
            &self.address,
            &self.town,
            &self.postcode,
            &self.accessibility,
            &self.travel_notes,
        ]
        .iter()
        .all(|v| v.trim().is_empty())
    }

    fn from_venue(v: &pb::Venue) -> VenueForm {
        VenueForm {
            name: v.name.clone(),
            address: v.address.clone(),
            town: v.town.clone(),
            postcode: v.postcode.clone(),
            accessibility: v.accessibility.clone(),
            travel_notes: v.travel_notes.clone(),
        }
    }

    fn to_venue(&self) -> pb::Venue {
        pb::Venue {
            name: self.name.trim().into(),
            address: self.address.trim().into(),
            town: self.town.trim().into(),
            postcode: self.postcode.trim().into(),
            latitude: None,
            longitude: None,
            accessibility: self.accessibility.trim().into(),
            travel_notes: self.travel_notes.trim().into(),
        }
    }
}

/// A number field: empty is 0 (no limit); anything else must be a whole
/// number from 0 to `max`.
fn number(errors: &mut Vec<FieldError>, field: &str, typed: &str, max: i32) -> i32 {
    let typed = typed.trim();
    if typed.is_empty() {
        return 0;
    }
    match typed.parse::<i32>() {
        Ok(n) if (0..=max).contains(&n) => n,
        _ => {
            errors.push(FieldError::new(
                field,
                format!("Enter a whole number from 0 to {max}, or leave it empty"),
            ));
            0
        }
    }
}

impl CardForm {
    /// From the posted pairs (a form with repeated names, which a struct
    /// cannot take).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> CardForm {
        let mut f = CardForm::default();
        let mut venues: Vec<VenueForm> = Vec::new();
        for (name, value) in pairs {
            // A form from before several places ("venue_town") is the first place's.
            let name = match name.strip_prefix("venue_") {
                Some(part) => format!("venue-0-{part}"),
                None => name,
            };
            if let Some((i, part)) = name
                .strip_prefix("venue-")
                .and_then(|rest| rest.split_once('-'))
            {
                // One blank place more than listings keeps may be posted.
                if let Ok(i) = i.parse::<usize>()
                    && i <= MAX_VENUES
                {
                    if venues.len() <= i {
                        venues.resize_with(i + 1, VenueForm::default);
                    }
                    if let Some(slot) = venues[i].part(part) {
                        *slot = value;
                    }
                }
                continue;
            }
            let slot = match name.as_str() {
                "topics" => {
                    f.topics.push(value);
                    continue;
                }
                "proposed" => {
                    f.proposed = true;
                    continue;
                }
                "carers_welcome" => {
                    f.carers_welcome = true;
                    continue;
                }
                "family_welcome" => {
                    f.family_welcome = true;
                    continue;
                }
                "welcome_with_joining_details" => {
                    f.welcome_with_joining_details = true;
                    continue;
                }
                "csrf" => &mut f.csrf,
                "action" => &mut f.action,
                "version" => &mut f.version,
                "name" => &mut f.name,
                "summary" => &mut f.summary,
                "description" => &mut f.description,
                "format" => &mut f.format,
                "join_policy" => &mut f.join_policy,
                "join_question" => &mut f.join_question,
                "who_for" => &mut f.who_for,
                "min_age" => &mut f.min_age,
                "max_age" => &mut f.max_age,
                "area_served" => &mut f.area_served,
                "contact_name" => &mut f.contact_name,
                "contact_email" => &mut f.contact_email,
                "contact_phone" => &mut f.contact_phone,
                "contact_website" => &mut f.contact_website,
                "cost_kind" => &mut f.cost_kind,
                "cost_description" => &mut f.cost_description,
                "languages" => &mut f.languages,
                "capacity" => &mut f.capacity,
                "joining_details" => &mut f.joining_details,
                // Anything else (a honeypot, a stray button) is not the card's.
                _ => continue,
            };
            *slot = value;
        }
        // A place left blank is no place: emptying one removes it, and the
        // places keep listings' numbering.
        f.venues = venues.into_iter().filter(|v| !v.is_blank()).collect();
        f
    }

    /// The card as it stands in listings, to edit.
    pub fn from_group(g: &pb::Group, join_question: &str) -> CardForm {
        let who = g.eligibility.clone().unwrap_or_default();
        let contact = g.contact.clone().unwrap_or_default();
        let cost = g.cost.clone().unwrap_or_default();
        let shown = |n: i32| if n == 0 { String::new() } else { n.to_string() };
        CardForm {
            version: g.version.to_string(),
            proposed: g.status() == pb::GroupStatus::Proposed,
            name: g.name.clone(),
            summary: g.summary.clone(),
            description: g.description.clone(),
            topics: g.topics.clone(),
            format: format_name(g.format()).into(),
            join_policy: policy_name(g.join_policy()).into(),
            join_question: join_question.to_string(),
            venues: g.venues.iter().map(VenueForm::from_venue).collect(),
            who_for: who.description,
            min_age: shown(who.minimum_age),
            max_age: shown(who.maximum_age),
            carers_welcome: who.carers_welcome,
            family_welcome: who.family_welcome,
            area_served: g.area_served.clone(),
            contact_name: contact.name,
            contact_email: contact.email,
            contact_phone: contact.phone,
            contact_website: contact.website,
            cost_kind: cost_name(cost.kind()).into(),
            cost_description: cost.description,
            languages: g.languages.join(", "),
            capacity: shown(g.capacity),
            joining_details: g.joining_details.clone(),
            welcome_with_joining_details: g.welcome_with_joining_details,
            ..CardForm::default()
        }
    }

    /// The card's parts as listings takes them, or what the person must
    /// correct first (numbers the service would never see as typed).
    pub fn card(&self) -> Result<Card, Vec<FieldError>> {
        let mut errors = Vec::new();
        let minimum_age = number(&mut errors, "min_age", &self.min_age, 120);
        let maximum_age = number(&mut errors, "max_age", &self.max_age, 120);
        let capacity = number(&mut errors, "capacity", &self.capacity, 10_000);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Card {
            name: self.name.trim().into(),
            summary: self.summary.trim().into(),
            description: self.description.trim().into(),
            topics: self.topics.clone(),
            format: format_from_name(&self.format) as i32,
            join_policy: policy_from_name(&self.join_policy) as i32,
            venues: self.venues.iter().map(VenueForm::to_venue).collect(),
            eligibility: Some(pb::Eligibility {
                description: self.who_for.trim().into(),
                minimum_age,
                maximum_age,
                carers_welcome: self.carers_welcome,
                family_welcome: self.family_welcome,
            }),
            area_served: self.area_served.trim().into(),
            contact: Some(pb::Contact {
                name: self.contact_name.trim().into(),
                email: self.contact_email.trim().into(),
                phone: self.contact_phone.trim().into(),
                website: self.contact_website.trim().into(),
            }),
            cost: Some(pb::Cost {
                kind: cost_from_name(&self.cost_kind) as i32,
                description: self.cost_description.trim().into(),
            }),
            languages: self
                .languages
                .split([',', ' '])
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_lowercase)
                .collect(),
            capacity,
            joining_details: self.joining_details.trim().into(),
            welcome_with_joining_details: self.welcome_with_joining_details,
        })
    }
}

/// The card's parts, shared by creating and editing.
pub(crate) struct Card {
    pub name: String,
    pub summary: String,
    pub description: String,
    pub topics: Vec<String>,
    pub format: i32,
    pub join_policy: i32,
    pub venues: Vec<pb::Venue>,
    pub eligibility: Option<pb::Eligibility>,
    pub area_served: String,
    pub contact: Option<pb::Contact>,
    pub cost: Option<pb::Cost>,
    pub languages: Vec<String>,
    pub capacity: i32,
    pub joining_details: String,
    pub welcome_with_joining_details: bool,
}

impl Card {
    /// Keeps what the form does not show of the card as it stands (`held`,
    /// its venues): each venue's position while its postcode stays the same
    /// (the same place first, else another venue with that postcode). An edit
    /// replaces the whole card.
    pub fn keep_what_the_form_does_not_show(&mut self, held: &[pb::Venue]) {
        let same_place = |a: &str, b: &str| {
            a.split_whitespace().collect::<String>().to_uppercase()
                == b.split_whitespace().collect::<String>().to_uppercase()
        };
        for (i, venue) in self.venues.iter_mut().enumerate() {
            let was = held
                .get(i)
                .filter(|h| same_place(&h.postcode, &venue.postcode))
                .or_else(|| {
                    held.iter().find(|h| {
                        !venue.postcode.trim().is_empty()
                            && same_place(&h.postcode, &venue.postcode)
                    })
                });
            if let Some(was) = was {
                venue.latitude = was.latitude;
                venue.longitude = was.longitude;
            }
        }
    }

    pub fn into_create(self, proposed: bool) -> pb::CreateGroupRequest {
        pb::CreateGroupRequest {
            proposed,
            name: self.name,
            summary: self.summary,
            description: self.description,
            topics: self.topics,
            format: self.format,
            join_policy: self.join_policy,
            venues: self.venues,
            eligibility: self.eligibility,
            area_served: self.area_served,
            contact: self.contact,
            cost: self.cost,
            languages: self.languages,
            capacity: self.capacity,
            joining_details: self.joining_details,
            welcome_with_joining_details: self.welcome_with_joining_details,
        }
    }

    pub fn into_update(self, group_id: &str, expected_version: i64) -> pb::UpdateGroupRequest {
        pb::UpdateGroupRequest {
            group_id: group_id.to_string(),
            expected_version,
            name: self.name,
            summary: self.summary,
            description: self.description,
            topics: self.topics,
            format: self.format,
            join_policy: self.join_policy,
            venues: self.venues,
            eligibility: self.eligibility,
            area_served: self.area_served,
            contact: self.contact,
            cost: self.cost,
            languages: self.languages,
            capacity: self.capacity,
            joining_details: self.joining_details,
            welcome_with_joining_details: self.welcome_with_joining_details,
        }
    }
}

/// The form's name for a field listings named (`None`: no such field on the
/// form; the message then stands for the whole form).
pub(crate) fn form_field(service_field: &str) -> Option<String> {
    let base = service_field.split('[').next().unwrap_or(service_field);
    let after_index = service_field
        .split_once("].")
        .map(|(_, rest)| rest)
        .unwrap_or("");
    if base == "venues" {
        // "venues[2].town": the third place's town.
        let i: usize = service_field
            .strip_prefix("venues[")?
            .split(']')
            .next()?
            .parse()
            .ok()?;
        let part = match after_index {
            "name" | "address" | "town" | "accessibility" | "travel_notes" => after_index,
            // Postcode, and a position the postcode did not give.
            _ => "postcode",
        };
        return Some(format!("venue-{i}-{part}"));
    }
    Some(String::from(match base {
        "name" => "name",
        "summary" => "summary",
        "description" => "description",
        "topics" => "topics",
        "format" => "format",
        "join_policy" => "join_policy",
        "languages" => "languages",
        "capacity" => "capacity",
        "area_served" => "area_served",
        "joining_details" => "joining_details",
        "eligibility.description" => "who_for",
        "eligibility.minimum_age" => "min_age",
        "eligibility.maximum_age" => "max_age",
        "contact.name" => "contact_name",
        "contact.email" => "contact_email",
        "contact.phone" => "contact_phone",
        "contact.website" => "contact_website",
        "cost.kind" => "cost_kind",
        "cost.description" => "cost_description",
        "join_question" => "join_question",
        _ => return None,
    }))
}

/// What a person reads for a form field in a message about it.
fn label_of(field: &str) -> String {
    if let Some((i, part)) = field
        .strip_prefix("venue-")
        .and_then(|rest| rest.split_once('-'))
    {
        let what = match part {
            "name" => "The place",
            "address" => "The address",
            "town" => "The town",
            "postcode" => "The postcode",
            "accessibility" => "Access",
            _ => "Getting there",
        };
        let n = i.parse::<usize>().unwrap_or(0) + 1;
        return format!("{what} (place {n})");
    }
    String::from(match field {
        "name" => "The name",
        "summary" => "The one-line summary",
        "description" => "About the group",
        "topics" => "Topics",
        "format" => "How it meets",
        "join_policy" => "Joining",
        "join_question" => "The question",
        "languages" => "Languages",
        "capacity" => "Most members",
        "area_served" => "Area served",
        "joining_details" => "Joining details",
        "who_for" => "Who it is for",
        "min_age" => "Youngest age",
        "max_age" => "Oldest age",
        "contact_name" => "The contact's name",
        "contact_email" => "The contact email",
        "contact_phone" => "The contact phone",
        "contact_website" => "The website",
        "cost_kind" => "Cost",
        "cost_description" => "About the cost",
        _ => "",
    })
}

/// The fields a service refused, named as the form names them, each message
/// saying which field it is about ("The town must not be empty").
pub(crate) fn refused_fields(status: &tonic::Status) -> Vec<FieldError> {
    super::forms::violations(status, form_field)
        .into_iter()
        .map(|mut e| {
            let label = label_of(&e.field);
            if !label.is_empty() {
                e.message = format!("{label} {}", e.message);
            }
            e
        })
        .collect()
}

/// The ways a group meets, as the form names them, with their labels.
pub(crate) const FORMATS: [(&str, &str); 4] = [
    ("in_person", "In person"),
    ("online", "Online"),
    ("phone", "By phone"),
    ("hybrid", "In person and online"),
];

pub(crate) const POLICIES: [(&str, &str); 3] = [
    ("open", "Anyone may join"),
    ("approval", "People ask, and an organiser says yes"),
    ("invite_only", "By invitation only"),
];

pub(crate) const COSTS: [(&str, &str); 3] = [
    ("free", "Free"),
    ("donation", "A donation if you can"),
    ("fee", "A fee"),
];

fn format_name(f: pb::MeetingFormat) -> &'static str {
    match f {
        pb::MeetingFormat::InPerson => "in_person",
        pb::MeetingFormat::Online => "online",
        pb::MeetingFormat::Phone => "phone",
        pb::MeetingFormat::Hybrid => "hybrid",
        pb::MeetingFormat::Unspecified => "",
    }
}

fn format_from_name(name: &str) -> pb::MeetingFormat {
    match name {
        "in_person" => pb::MeetingFormat::InPerson,
        "online" => pb::MeetingFormat::Online,
        "phone" => pb::MeetingFormat::Phone,
        "hybrid" => pb::MeetingFormat::Hybrid,
        _ => pb::MeetingFormat::Unspecified,
    }
}

fn policy_name(p: pb::JoinPolicy) -> &'static str {
    match p {
        pb::JoinPolicy::Open => "open",
        pb::JoinPolicy::Approval => "approval",
        pb::JoinPolicy::InviteOnly => "invite_only",
        pb::JoinPolicy::Unspecified => "",
    }
}

fn policy_from_name(name: &str) -> pb::JoinPolicy {
    match name {
        "open" => pb::JoinPolicy::Open,
        "approval" => pb::JoinPolicy::Approval,
        "invite_only" => pb::JoinPolicy::InviteOnly,
        _ => pb::JoinPolicy::Unspecified,
    }
}

fn cost_name(c: pb::CostKind) -> &'static str {
    match c {
        pb::CostKind::Free => "free",
        pb::CostKind::Donation => "donation",
        pb::CostKind::Fee => "fee",
        pb::CostKind::Unspecified => "",
    }
}

fn cost_from_name(name: &str) -> pb::CostKind {
    match name {
        "free" => pb::CostKind::Free,
        "donation" => pb::CostKind::Donation,
        "fee" => pb::CostKind::Fee,
        _ => pb::CostKind::Unspecified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_posted_card_reads_back_whole_and_round_trips_through_a_group() {
        let form = CardForm::from_pairs(pairs(&[
            ("name", " Riverside circle "),
            ("topics", "bereavement"),
            ("topics", "carers"),
            ("format", "hybrid"),
            ("join_policy", "approval"),
            ("venue_postcode", "ng1 5fs"),
            ("venue-1-name", ""),
            ("venue-2-town", "Beeston"),
            ("venue-11-town", "past the last place, ignored"),
            ("min_age", "18"),
            ("carers_welcome", "1"),
            ("cost_kind", "donation"),
            ("languages", "en, PL  cy"),
            ("capacity", ""),
            ("website_url", "a honeypot is not the card's"),
        ]));
        let card = form.card().unwrap();
        assert_eq!(card.name, "Riverside circle");
        assert_eq!(card.topics, ["bereavement", "carers"]);
        assert_eq!(card.languages, ["en", "pl", "cy"]);
        assert_eq!(card.capacity, 0);
        let towns: Vec<&str> = card.venues.iter().map(|v| v.town.as_str()).collect();
        assert_eq!(towns, ["", "Beeston"], "the blank place is dropped");
        let request = card.into_create(false);
        let group = pb::Group {
            name: request.name.clone(),
            topics: request.topics.clone(),
            format: request.format,
            join_policy: request.join_policy,
            venues: request.venues.clone(),
            eligibility: request.eligibility.clone(),
            cost: request.cost.clone(),
            languages: request.languages.clone(),
            version: 3,
            ..Default::default()
        };
        let back = CardForm::from_group(&group, "Why this group?");
        assert_eq!(back.format, "hybrid");
        assert_eq!(back.join_policy, "approval");
        assert_eq!(back.venues[0].postcode, "ng1 5fs");
        assert_eq!(back.venues[1].town, "Beeston");
        assert_eq!(back.min_age, "18");
        assert!(back.carers_welcome && !back.family_welcome);
        assert_eq!(back.cost_kind, "donation");
        assert_eq!(back.languages, "en, pl, cy");
        assert_eq!(back.version, "3");
        assert_eq!(back.join_question, "Why this group?");
    }

    #[test]
    fn an_edit_keeps_each_venues_position_while_its_postcode_stays() {
        let held = [
            pb::Venue {
                postcode: "NG1 5FS".into(),
                latitude: Some(52.95),
                longitude: Some(-1.15),
                ..Default::default()
            },
            pb::Venue {
                name: "Summer venue".into(),
                postcode: "NG9 1AA".into(),
                latitude: Some(52.92),
                longitude: Some(-1.21),
                ..Default::default()
            },
        ];
        // The first place removed: the second keeps its position.
        let mut card = CardForm::from_pairs(pairs(&[
            ("venue-0-postcode", ""),
            ("venue-1-postcode", "ng9 1aa"),
            ("venue-2-postcode", "NG7 2RD"),
        ]))
        .card()
        .unwrap();
        card.keep_what_the_form_does_not_show(&held);
        assert_eq!(card.venues.len(), 2);
        assert_eq!(card.venues[0].latitude, Some(52.92));
        assert_eq!(
            card.venues[1].latitude, None,
            "a new postcode places it anew"
        );
    }

    #[test]
    fn numbers_that_are_not_are_named_before_anything_is_sent() {
        let form = CardForm::from_pairs(pairs(&[("min_age", "eighteen"), ("capacity", "-3")]));
        let errors = form.card().err().unwrap();
        let named: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(named, ["min_age", "capacity"]);
    }

    #[test]
    fn every_field_listings_names_has_its_place_on_the_form() {
        for (service, form) in [
            ("venues[0].postcode", "venue-0-postcode"),
            ("venues[0].latitude", "venue-0-postcode"),
            ("venues[3].travel_notes", "venue-3-travel_notes"),
            ("topics[1]", "topics"),
            ("languages[0]", "languages"),
            ("eligibility.maximum_age", "max_age"),
            ("contact.website", "contact_website"),
            ("cost.description", "cost_description"),
        ] {
            assert_eq!(form_field(service).as_deref(), Some(form), "{service}");
        }
        assert_eq!(form_field("something_else"), None);
        assert_eq!(form_field("venues"), None, "at most ten: the whole form's");
        assert_eq!(label_of("venue-1-town"), "The town (place 2)");
    }
}
