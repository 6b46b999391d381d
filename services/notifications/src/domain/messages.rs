//! Who is told what when an event arrives. Titles may show on a lock screen or in
//! an email subject, so they never name a group or a health condition; group
//! names appear only in bodies, which the recipient sees after opening.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    MemberJoined,
    Welcome,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::MemberJoined => "MEMBER_JOINED",
            Kind::Welcome => "WELCOME",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        [Kind::MemberJoined, Kind::Welcome]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub recipient_id: String,
    pub kind: Kind,
    pub title: String,
    pub body: String,
}

/// The messages for "`person` joined `group_name`": a welcome for the person, and
/// a note for each organiser other than the person.
pub fn member_joined(person: &str, group_name: &str, organisers: &[String]) -> Vec<Message> {
    let mut out = vec![Message {
        recipient_id: person.to_string(),
        kind: Kind::Welcome,
        title: "Welcome to your new group".into(),
        body: format!(
            "You are now a member of {group_name}. You can see when it meets and leave at any time."
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welcome_for_the_member_note_for_other_organisers() {
        let msgs = member_joined(
            "p",
            "Diabetes support Nottingham",
            &["org".into(), "p".into()],
        );
        assert_eq!(msgs.len(), 2);
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
        for m in member_joined("p", "Diabetes support Nottingham", &["org".into()]) {
            assert!(!m.title.contains("Diabetes"), "{}", m.title);
            assert!(m.body.contains("Diabetes support Nottingham"));
        }
    }
}
