//! Sessions: who is signed in on this browser. The cookie holds a random id
//! (only its digest is stored), `HttpOnly`, `SameSite=Lax`, and `Secure` with
//! the `__Host-` prefix whenever the site is reached over HTTPS. A session
//! ends when unused for `sessions.idle_hours`, or `sessions.absolute_hours`
//! after sign-in; signing in always starts a new one (the id rotates).

use axum::http::{HeaderMap, HeaderValue, header};
use sea_orm::DatabaseConnection;
use selfhelp_core::time::Clock;

use crate::config::SessionConfig;
use crate::store::{self, session};

/// The cookie's name over HTTPS (browsers keep a `__Host-` cookie only when it
/// is `Secure`, for this host and path `/`) and over plain HTTP (development).
const SECURE_COOKIE: &str = "__Host-selfhelp";
const PLAIN_COOKIE: &str = "selfhelp";

/// Who is signed in, as a request finds them.
#[derive(Clone, Debug)]
pub struct Signed {
    pub person_id: String,
    pub roles: Vec<String>,
    pub csrf_token: String,
    id_digest: String,
}

impl Signed {
    pub fn is_staff(&self) -> bool {
        self.roles
            .iter()
            .any(|r| r == selfhelp_core::caller::ROLE_OPERATOR)
    }
}

#[derive(Clone)]
pub struct Sessions {
    db: DatabaseConnection,
    clock: Clock,
    cfg: SessionConfig,
}

impl Sessions {
    pub fn new(db: DatabaseConnection, clock: Clock, cfg: SessionConfig) -> Sessions {
        Sessions { db, clock, cfg }
    }

    fn lifetimes(&self, staff: bool) -> (i64, i64) {
        let (idle, absolute) = if staff {
            (self.cfg.staff_idle_hours, self.cfg.staff_absolute_hours)
        } else {
            (self.cfg.idle_hours, self.cfg.absolute_hours)
        };
        ((idle * 3_600_000) as i64, (absolute * 3_600_000) as i64)
    }

    /// The session the request's cookie names, if it is still good.
    pub async fn current(&self, headers: &HeaderMap) -> Result<Option<Signed>, sea_orm::DbErr> {
        let Some(id) = cookie(headers, SECURE_COOKIE).or_else(|| cookie(headers, PLAIN_COOKIE))
        else {
            return Ok(None);
        };
        let digest = store::digest(&id);
        let Some(row) = session::find(&self.db, &digest).await? else {
            return Ok(None);
        };
        let now = self.clock.now_ms();
        let staff = row
            .roles()
            .iter()
            .any(|r| r == selfhelp_core::caller::ROLE_OPERATOR);
        let (idle, _) = self.lifetimes(staff);
        if row.expires_at_ms <= now || row.last_seen_at_ms + idle <= now {
            session::delete(&self.db, &digest).await?;
            return Ok(None);
        }
        session::touch(&self.db, &digest, now).await?;
        Ok(Some(Signed {
            roles: row.roles(),
            person_id: row.person_id,
            csrf_token: row.csrf_token,
            id_digest: digest,
        }))
    }

    /// Starts a session for `person_id`, ending the one the browser had (the
    /// id never survives a sign-in); returns the `Set-Cookie` value.
    pub async fn start(
        &self,
        headers: &HeaderMap,
        person_id: &str,
        roles: &[String],
        secure: bool,
    ) -> Result<HeaderValue, sea_orm::DbErr> {
        if let Some(old) = cookie(headers, SECURE_COOKIE).or_else(|| cookie(headers, PLAIN_COOKIE))
        {
            session::delete(&self.db, &store::digest(&old)).await?;
        }
        let now = self.clock.now_ms();
        let staff = roles
            .iter()
            .any(|r| r == selfhelp_core::caller::ROLE_OPERATOR);
        let (_, absolute) = self.lifetimes(staff);
        let id = store::random_secret(32);
        session::insert(
            &self.db,
            session::Model {
                id_digest: store::digest(&id),
                person_id: person_id.to_string(),
                roles: roles.join(","),
                csrf_token: store::random_secret(24),
                created_at_ms: now,
                last_seen_at_ms: now,
                expires_at_ms: now + absolute,
            },
        )
        .await?;
        Ok(set_cookie(&id, secure, absolute / 1_000))
    }

    /// Ends this session; returns the `Set-Cookie` value that clears it.
    pub async fn end(&self, signed: &Signed, secure: bool) -> Result<HeaderValue, sea_orm::DbErr> {
        session::delete(&self.db, &signed.id_digest).await?;
        Ok(set_cookie("", secure, 0))
    }

    /// Ends every session of the person (other browsers too).
    pub async fn end_all(
        &self,
        person_id: &str,
        secure: bool,
    ) -> Result<HeaderValue, sea_orm::DbErr> {
        session::delete_all_of(&self.db, person_id).await?;
        Ok(set_cookie("", secure, 0))
    }

    /// The `Set-Cookie` value that clears the browser's session cookie (its
    /// session already gone, as after an erasure).
    pub fn clear_cookie(&self, secure: bool) -> HeaderValue {
        set_cookie("", secure, 0)
    }

    /// Forgets sessions that have ended.
    pub async fn forget_ended(&self) -> Result<u64, sea_orm::DbErr> {
        let now = self.clock.now_ms();
        let (idle, _) = self.lifetimes(false);
        session::delete_stale(&self.db, now, now - idle).await
    }
}

/// `Set-Cookie` for the session id `value` (empty and `max_age` 0: cleared).
fn set_cookie(value: &str, secure: bool, max_age_secs: i64) -> HeaderValue {
    let name = if secure { SECURE_COOKIE } else { PLAIN_COOKIE };
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
    ))
    .expect("a cookie of ASCII")
}

/// The value of the cookie `name` in the request, if sent.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_by_name_and_set_with_the_right_flags() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("other=1; __Host-selfhelp=abc; x=2"),
        );
        assert_eq!(cookie(&headers, SECURE_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, PLAIN_COOKIE), None);
        let set = set_cookie("abc", true, 60);
        let set = set.to_str().unwrap();
        assert!(set.starts_with("__Host-selfhelp=abc; Path=/; HttpOnly; SameSite=Lax"));
        assert!(set.ends_with("; Secure"));
        let plain = set_cookie("abc", false, 60);
        assert!(!plain.to_str().unwrap().contains("Secure"));
    }
}

tokio::task_local! {
    /// Who is signed in for the request being answered (pages show it).
    static SIGNED: Option<Signed>;
}

/// Who is signed in for the request being answered, if anyone.
pub fn current() -> Option<Signed> {
    SIGNED.try_with(Clone::clone).ok().flatten()
}

/// `page` made as for someone not signed in (the request's session has just
/// ended, as after an erasure).
pub fn without_session<T>(page: impl FnOnce() -> T) -> T {
    SIGNED.sync_scope(None, page)
}

/// Finds the request's session (when it sends a cookie) and makes it known to
/// what answers: as an `Extension<Signed>` for handlers, and to the pages'
/// layout.
pub(crate) async fn resolve(
    axum::extract::State(state): axum::extract::State<crate::AppState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let has_cookie = cookie(request.headers(), SECURE_COOKIE)
        .or_else(|| cookie(request.headers(), PLAIN_COOKIE))
        .is_some();
    let signed = if has_cookie {
        match state.sessions.current(request.headers()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "sessions cannot be read");
                return crate::web::error_page(&state, &crate::error::GatewayError::Unavailable);
            }
        }
    } else {
        None
    };
    if let Some(s) = &signed {
        request.extensions_mut().insert(s.clone());
    }
    SIGNED.scope(signed, next.run(request)).await
}
