//! Membership states and their transitions, roles and what each role may do, and
//! the decision what a join request leads to. Pure: no storage, no wire types.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Invited,
    Requested,
    Waitlisted,
    Active,
    Declined,
    Left,
    Removed,
    Banned,
}

const ALL_STATES: [State; 8] = [
    State::Invited,
    State::Requested,
    State::Waitlisted,
    State::Active,
    State::Declined,
    State::Left,
    State::Removed,
    State::Banned,
];

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Invited => "INVITED",
            State::Requested => "REQUESTED",
            State::Waitlisted => "WAITLISTED",
            State::Active => "ACTIVE",
            State::Declined => "DECLINED",
            State::Left => "LEFT",
            State::Removed => "REMOVED",
            State::Banned => "BANNED",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        ALL_STATES.into_iter().find(|st| st.as_str() == s)
    }

    /// Still attached to the group in some way (a place, a request, an invitation).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            State::Invited | State::Requested | State::Waitlisted | State::Active
        )
    }
}

/// Whether a membership may move from `from` to `to`. Every other move is refused,
/// so a stale or repeated command cannot, say, approve someone who has left.
pub fn check_transition(from: State, to: State) -> Result<(), String> {
    use State::*;
    let allowed = match (from, to) {
        // Accepting an invitation, an approval, a promotion; a full group waitlists.
        (Invited | Requested, Active | Waitlisted) => true,
        (Waitlisted, Active) => true,
        (Requested, Declined) => true,
        // Withdrawing a request, refusing an invitation, leaving.
        (Invited | Requested | Waitlisted | Active, Left) => true,
        // Removing an invited person withdraws the invitation.
        (Invited | Waitlisted | Active, Removed) => true,
        (Invited | Requested | Waitlisted | Active | Declined | Left | Removed, Banned) => true,
        // Coming back after leaving, a decline or a removal (not after a ban).
        (Declined | Left | Removed, Invited | Requested | Waitlisted | Active) => true,
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(format!(
            "a {} membership cannot become {}",
            from.as_str().to_lowercase(),
            to.as_str().to_lowercase()
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Member,
    CoOrganiser,
    Organiser,
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

/// Things a person may do in a group. Operators of the region are not in this
/// matrix: they moderate listings, and see no member data (ADR 0010).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Approve or decline requests, invite, remove and ban.
    ManageMembers,
    /// Edit the group's listing (listings learns this from role events).
    EditListing,
    /// See the member list (members too, when the group's setting allows).
    SeeMemberList,
    /// Give and take roles and duties.
    AssignRoles,
    /// Set the rota and the group's membership settings.
    ManageGroup,
}

/// The permission matrix. `members_see_list` is the group's member-list setting.
pub fn may(role: Role, permission: Permission, members_see_list: bool) -> bool {
    use Permission::*;
    match role {
        Role::Organiser => true,
        Role::CoOrganiser => !matches!(permission, AssignRoles),
        Role::Member => matches!(permission, SeeMemberList) && members_see_list,
    }
}

/// What membership knows about a group (from listings events, or asked directly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFacts {
    /// The group's name, for answers; decides nothing.
    pub name: String,
    pub region: String,
    /// Listings' status name, e.g. `PUBLISHED`.
    pub status: String,
    /// Listings' join policy name, e.g. `OPEN`.
    pub join_policy: String,
    pub organiser_ids: Vec<String>,
    /// Places for members; 0 means no limit.
    pub capacity: i32,
}

/// How a person asks to join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinAttempt {
    /// They came with an invitation code that is valid for this group.
    pub valid_code: bool,
    /// The group has no free place.
    pub full: bool,
}

/// What a join request leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinDecision {
    /// Move to (or create the membership in) this state, with this role.
    Become(State, Role),
    /// Already active, requested or waitlisted: answer with the membership as it is.
    Unchanged,
}

/// Decides a join by `person` given the group and any earlier membership state.
pub fn decide_join(
    group: &GroupFacts,
    person: &str,
    existing: Option<State>,
    attempt: JoinAttempt,
) -> Result<JoinDecision, String> {
    if group.status != "PUBLISHED" {
        return Err("the group is not open for joining (it is not published)".into());
    }
    // Listings' organiser list names the creator (and co-organisers, who always
    // have a membership here): it grants the organiser role only to someone
    // joining for the first time, never to someone coming back.
    let is_organiser = existing.is_none() && group.organiser_ids.iter().any(|o| o == person);
    let role = if is_organiser {
        Role::Organiser
    } else {
        Role::Member
    };
    let place = if attempt.full && !is_organiser {
        State::Waitlisted
    } else {
        State::Active
    };
    match existing {
        Some(State::Active | State::Requested | State::Waitlisted) => {
            return Ok(JoinDecision::Unchanged);
        }
        Some(State::Banned) => return Err("you cannot join this group".into()),
        // An invitation is the organisers' yes, whatever the policy.
        Some(State::Invited) => return Ok(JoinDecision::Become(place, role)),
        _ => {}
    }
    let target = match group.join_policy.as_str() {
        _ if is_organiser => State::Active,
        "OPEN" => place,
        // A code is the organisers' yes, given before the asking.
        "APPROVAL" | "INVITE_ONLY" if attempt.valid_code => place,
        "APPROVAL" => State::Requested,
        "INVITE_ONLY" => return Err("this group is invitation only".into()),
        other => return Err(format!("this group's join policy ({other}) is not known")),
    };
    Ok(JoinDecision::Become(target, role))
}

/// Standard duties; groups may add their own names.
pub const STANDARD_DUTIES: [&str; 3] = ["chair", "secretary", "treasurer"];

#[cfg(test)]
mod tests {
    use super::*;

    fn group(status: &str, policy: &str) -> GroupFacts {
        GroupFacts {
            name: String::new(),
            region: "notts".into(),
            status: status.into(),
            join_policy: policy.into(),
            organiser_ids: vec!["org".into()],
            capacity: 0,
        }
    }

    const PLAIN: JoinAttempt = JoinAttempt {
        valid_code: false,
        full: false,
    };

    #[test]
    fn each_policy_leads_where_it_should() {
        let join = |policy, attempt| decide_join(&group("PUBLISHED", policy), "p", None, attempt);
        assert_eq!(
            join("OPEN", PLAIN),
            Ok(JoinDecision::Become(State::Active, Role::Member))
        );
        assert_eq!(
            join("APPROVAL", PLAIN),
            Ok(JoinDecision::Become(State::Requested, Role::Member))
        );
        assert!(join("INVITE_ONLY", PLAIN).is_err());
        let with_code = JoinAttempt {
            valid_code: true,
            full: false,
        };
        assert_eq!(
            join("INVITE_ONLY", with_code),
            Ok(JoinDecision::Become(State::Active, Role::Member))
        );
        assert_eq!(
            join("APPROVAL", with_code),
            Ok(JoinDecision::Become(State::Active, Role::Member)),
            "a code is the organisers' yes"
        );
        let full = JoinAttempt {
            valid_code: false,
            full: true,
        };
        assert_eq!(
            join("OPEN", full),
            Ok(JoinDecision::Become(State::Waitlisted, Role::Member))
        );
    }

    #[test]
    fn organisers_invitations_and_repeats() {
        let g = group("PUBLISHED", "APPROVAL");
        assert_eq!(
            decide_join(&g, "org", None, PLAIN),
            Ok(JoinDecision::Become(State::Active, Role::Organiser))
        );
        assert_eq!(
            decide_join(&g, "p", Some(State::Invited), PLAIN),
            Ok(JoinDecision::Become(State::Active, Role::Member))
        );
        assert_eq!(
            decide_join(&g, "p", Some(State::Requested), PLAIN),
            Ok(JoinDecision::Unchanged)
        );
        assert_eq!(
            decide_join(&g, "p", Some(State::Left), PLAIN),
            Ok(JoinDecision::Become(State::Requested, Role::Member))
        );
        // Coming back is not a way to become organiser.
        assert_eq!(
            decide_join(&g, "org", Some(State::Left), PLAIN),
            Ok(JoinDecision::Become(State::Requested, Role::Member))
        );
    }

    #[test]
    fn drafts_and_banned_people_are_refused() {
        assert!(decide_join(&group("DRAFT", "OPEN"), "p", None, PLAIN).is_err());
        assert!(decide_join(&group("ARCHIVED", "OPEN"), "p", None, PLAIN).is_err());
        assert!(decide_join(&group("SUSPENDED", "OPEN"), "p", None, PLAIN).is_err());
        assert!(decide_join(&group("PUBLISHED", "OPEN"), "p", Some(State::Banned), PLAIN).is_err());
    }

    #[test]
    fn illegal_transitions_are_refused() {
        use State::*;
        assert!(check_transition(Requested, Active).is_ok());
        assert!(check_transition(Active, Left).is_ok());
        assert!(check_transition(Left, Active).is_ok());
        for (from, to) in [
            (Left, Declined),
            (Active, Declined),
            (Banned, Active),
            (Banned, Requested),
            (Declined, Removed),
            (Active, Requested),
            (Left, Left),
        ] {
            assert!(check_transition(from, to).is_err(), "{from:?} → {to:?}");
        }
    }

    #[test]
    fn permission_matrix() {
        use Permission::*;
        for p in [
            ManageMembers,
            EditListing,
            SeeMemberList,
            AssignRoles,
            ManageGroup,
        ] {
            assert!(may(Role::Organiser, p, false));
        }
        assert!(may(Role::CoOrganiser, ManageMembers, false));
        assert!(may(Role::CoOrganiser, EditListing, false));
        assert!(!may(Role::CoOrganiser, AssignRoles, false));
        assert!(!may(Role::Member, SeeMemberList, false));
        assert!(may(Role::Member, SeeMemberList, true));
        assert!(!may(Role::Member, ManageMembers, true));
    }
}
