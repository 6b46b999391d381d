//! Membership states, roles and the decision whether a person may join.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Invited,
    Requested,
    Active,
    Declined,
    Left,
    Removed,
    Banned,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Invited => "INVITED",
            State::Requested => "REQUESTED",
            State::Active => "ACTIVE",
            State::Declined => "DECLINED",
            State::Left => "LEFT",
            State::Removed => "REMOVED",
            State::Banned => "BANNED",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        [
            State::Invited,
            State::Requested,
            State::Active,
            State::Declined,
            State::Left,
            State::Removed,
            State::Banned,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Member,
    Organiser,
    CoOrganiser,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "MEMBER",
            Role::Organiser => "ORGANISER",
            Role::CoOrganiser => "CO_ORGANISER",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Member, Role::Organiser, Role::CoOrganiser]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// What membership knows about a group (from listings events, or asked directly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFacts {
    pub region: String,
    /// Listings' status name, e.g. `PUBLISHED`.
    pub status: String,
    /// Listings' join policy name, e.g. `OPEN`.
    pub join_policy: String,
    pub organiser_ids: Vec<String>,
}

/// What a join request leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinDecision {
    /// A new ACTIVE membership with this role.
    Activate(Role),
    /// Already an active member: answer with the existing membership.
    AlreadyActive,
}

/// Decides a join by `person` given the group and any earlier membership state.
pub fn decide_join(
    group: &GroupFacts,
    person: &str,
    existing: Option<State>,
) -> Result<JoinDecision, String> {
    if group.status != "PUBLISHED" {
        return Err("the group is not open for joining (it is not published)".into());
    }
    match existing {
        Some(State::Active) => return Ok(JoinDecision::AlreadyActive),
        Some(State::Banned) => return Err("you cannot join this group".into()),
        _ => {}
    }
    if group.join_policy != "OPEN" {
        return Err(format!(
            "this group's join policy is {}; only OPEN groups can be joined directly",
            group.join_policy
        ));
    }
    let role = if group.organiser_ids.iter().any(|o| o == person) {
        Role::Organiser
    } else {
        Role::Member
    };
    Ok(JoinDecision::Activate(role))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(status: &str, policy: &str) -> GroupFacts {
        GroupFacts {
            region: "notts".into(),
            status: status.into(),
            join_policy: policy.into(),
            organiser_ids: vec!["org".into()],
        }
    }

    #[test]
    fn open_published_group_can_be_joined() {
        assert_eq!(
            decide_join(&group("PUBLISHED", "OPEN"), "p", None),
            Ok(JoinDecision::Activate(Role::Member))
        );
        assert_eq!(
            decide_join(&group("PUBLISHED", "OPEN"), "org", None),
            Ok(JoinDecision::Activate(Role::Organiser))
        );
        assert_eq!(
            decide_join(&group("PUBLISHED", "OPEN"), "p", Some(State::Left)),
            Ok(JoinDecision::Activate(Role::Member))
        );
        assert_eq!(
            decide_join(&group("PUBLISHED", "OPEN"), "p", Some(State::Active)),
            Ok(JoinDecision::AlreadyActive)
        );
    }

    #[test]
    fn drafts_banned_people_and_other_policies_are_refused() {
        assert!(decide_join(&group("DRAFT", "OPEN"), "p", None).is_err());
        assert!(decide_join(&group("PUBLISHED", "OPEN"), "p", Some(State::Banned)).is_err());
        assert!(decide_join(&group("PUBLISHED", "APPROVAL"), "p", None).is_err());
    }
}
