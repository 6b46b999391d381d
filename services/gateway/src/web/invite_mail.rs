//! Invitations sent by email: an organiser's to join their group, and the
//! region staff's to organise a group nobody runs. The email carries a
//! single-use code and the group's address; the code is typed on the group's
//! page after signing in, so it never sits in a URL (where logs keep it). The
//! address is used for this one email: it is neither stored nor logged.

use lettre::Message;
use lettre::message::Mailbox;

use crate::AppState;
use crate::error::GatewayError;

/// One invitation to send.
pub(crate) struct EmailInvitation<'a> {
    /// Checked with [`crate::signin::normalise`].
    pub to: &'a str,
    /// The site's address, for the link.
    pub base: &'a str,
    pub group_id: &'a str,
    pub group_name: &'a str,
    pub code: &'a str,
    /// To organise the group, rather than to join it.
    pub organiser: bool,
    pub valid_days: i32,
}

/// Sends `invitation`; a failure to send is the person's to retry.
pub(crate) async fn send(
    state: &AppState,
    invitation: EmailInvitation<'_>,
) -> Result<(), GatewayError> {
    let EmailInvitation {
        to,
        base,
        group_id,
        group_name,
        code,
        organiser,
        valid_days,
    } = invitation;
    let area = &state.config.area_name;
    let what = if organiser {
        format!(
            "The staff of {area} self-help groups invite you to organise {group_name}: to answer the people who ask to join, keep its details right and run it on the website."
        )
    } else {
        format!("You are invited to join {group_name}.")
    };
    let text = format!(
        "{what}\n\n\
         Open the group's page, sign in with this email address, and enter this invitation code when you join:\n\n\
         {code}\n\n\
         {base}/groups/{group_id}\n\n\
         The code works once, for {valid_days} days. If you were not expecting this, do nothing.\n"
    );
    let to: Mailbox = to
        .parse()
        .map_err(|_| GatewayError::bad("email", "Enter an email address like name@example.org"))?;
    let message = Message::builder()
        .from(state.mail.from().clone())
        .to(to)
        // No group or health condition in a subject line.
        .subject(format!("An invitation from {area} self-help groups"))
        .body(text)
        .map_err(|e| GatewayError::Internal(format!("an invitation email: {e}")))?;
    state.mail.send(message).await.map_err(|e| {
        // Not the server's words: an SMTP refusal often repeats the address.
        tracing::warn!(
            permanent = e.permanent,
            "an invitation email could not be sent"
        );
        GatewayError::Unavailable
    })
}
