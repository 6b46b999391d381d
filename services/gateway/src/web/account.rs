//! Signing in and out, and the account page: the email-link sign-in (a link,
//! or its code on another device), signing out here or everywhere.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use super::forms::{self, with_cookie};
use super::pages::{Layout, error_page, html};
use crate::AppState;
use crate::error::GatewayError;
use crate::http::{base_url, client_address, over_https};
use crate::sessions::Signed;
use crate::signin::{Asked, Refused, SignedIn, safe_next};

/// A page with the anonymous form token, setting its cookie when new.
#[derive(Serialize)]
struct SignInPage<'a> {
    csrf: &'a str,
    next: &'a str,
    email: &'a str,
    error: Option<&'a str>,
    /// Staff may sign in through the region's identity provider.
    staff: bool,
}

pub(crate) async fn sign_in_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let (csrf, set) = forms::anonymous_token(&headers, over_https(&state, &headers));
    let next = safe_next(params.get("next").map_or("/", String::as_str));
    let view = SignInPage {
        csrf: &csrf,
        next,
        email: "",
        error: None,
        staff: state.staff.is_some(),
    };
    let layout = Layout::new(
        &state,
        "Sign in",
        "Sign in with a link sent to your email.",
        None,
    );
    with_cookie(
        html(&state, StatusCode::OK, "sign_in.html", layout, &view),
        set,
    )
}

#[derive(Deserialize)]
pub(crate) struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    next: String,
}

/// A sign-in form's checks: its token (double submit), and the client
/// address's hourly cap on sign-in requests.
fn anonymous_form(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
    csrf: &str,
) -> Result<(), Box<Response>> {
    if !forms::token_ok(headers, csrf, None) {
        return Err(Box::new(error_page(
            state,
            &GatewayError::bad("csrf", "the form has expired: please try again"),
        )));
    }
    let client = client_address(headers, peer.ip(), state.config.http.trusted_proxies);
    if let Err(retry_after_secs) = state.sign_in_limiter.check(client) {
        return Err(Box::new(error_page(
            state,
            &GatewayError::TooManyRequests { retry_after_secs },
        )));
    }
    Ok(())
}

pub(crate) async fn ask_for_link(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    if let Err(refused) = anonymous_form(&state, &headers, peer, &form.csrf) {
        return *refused;
    }
    let next = safe_next(&form.next).to_string();
    let base = base_url(&state, &headers);
    match state.sign_in.ask(&form.email, &next, &base).await {
        Ok(Asked::Link { id }) => Redirect::to(&format!("/sign-in/sent?link={id}")).into_response(),
        Ok(Asked::NotAnAddress) => {
            let view = SignInPage {
                csrf: &form.csrf,
                next: &next,
                email: form.email.trim(),
                error: Some("Enter an email address, like name@example.org"),
                staff: state.staff.is_some(),
            };
            let layout = Layout::new(&state, "Sign in", "", None);
            html(
                &state,
                StatusCode::BAD_REQUEST,
                "sign_in.html",
                layout,
                &view,
            )
        }
        Err(e) => failed(&state, e),
    }
}

#[derive(Serialize)]
struct SentPage<'a> {
    csrf: &'a str,
    link: &'a str,
    minutes: u64,
    error: Option<&'a str>,
}

pub(crate) async fn link_sent(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let (csrf, set) = forms::anonymous_token(&headers, over_https(&state, &headers));
    let link = params.get("link").map_or("", String::as_str);
    let view = SentPage {
        csrf: &csrf,
        link,
        minutes: state.config.sign_in.link_valid_minutes,
        error: None,
    };
    let layout = Layout::new(&state, "Check your email", "", None);
    with_cookie(
        html(&state, StatusCode::OK, "sign_in_sent.html", layout, &view),
        set,
    )
}

#[derive(Deserialize)]
pub(crate) struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    link: String,
    #[serde(default)]
    code: String,
}

pub(crate) async fn sign_in_with_code(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    if let Err(refused) = anonymous_form(&state, &headers, peer, &form.csrf) {
        return *refused;
    }
    match state.sign_in.with_code(form.link.trim(), &form.code).await {
        Ok(Ok(signed_in)) => start_session(&state, &headers, signed_in).await,
        Ok(Err(Refused::WrongCode)) => {
            let view = SentPage {
                csrf: &form.csrf,
                link: &form.link,
                minutes: state.config.sign_in.link_valid_minutes,
                error: Some("That code is not right: check it and try again"),
            };
            let layout = Layout::new(&state, "Check your email", "", None);
            html(
                &state,
                StatusCode::BAD_REQUEST,
                "sign_in_sent.html",
                layout,
                &view,
            )
        }
        Ok(Err(Refused::Spent)) => spent(&state),
        Err(e) => failed(&state, e),
    }
}

#[derive(Serialize)]
struct LinkPage<'a> {
    csrf: &'a str,
    token: &'a str,
    area_name: &'a str,
}

/// The link from the email shows a button: mail scanners open links, and
/// only a person presses it (a `GET` changes nothing).
pub(crate) async fn link_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let (csrf, set) = forms::anonymous_token(&headers, over_https(&state, &headers));
    let view = LinkPage {
        csrf: &csrf,
        token: &token,
        area_name: &state.config.area_name,
    };
    let layout = Layout::new(&state, "Sign in", "", None);
    let mut response = with_cookie(
        html(&state, StatusCode::OK, "sign_in_link.html", layout, &view),
        set,
    );
    // The secret in the address goes to no other site.
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[derive(Deserialize)]
pub(crate) struct LinkForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

pub(crate) async fn sign_in_with_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LinkForm>,
) -> Response {
    if !forms::token_ok(&headers, &form.csrf, None) {
        return error_page(
            &state,
            &GatewayError::bad("csrf", "the form has expired: please open the link again"),
        );
    }
    match state.sign_in.with_link(form.token.trim()).await {
        Ok(Ok(signed_in)) => start_session(&state, &headers, signed_in).await,
        Ok(Err(_)) => spent(&state),
        Err(e) => failed(&state, e),
    }
}

async fn start_session(state: &AppState, headers: &HeaderMap, signed_in: SignedIn) -> Response {
    let secure = over_https(state, headers);
    let cookie = match state
        .sessions
        .start(headers, &signed_in.person_id, &[], secure)
        .await
    {
        Ok(c) => c,
        Err(e) => return failed(state, e.into()),
    };
    // The address is the person's, confirmed by this sign-in: notifications
    // may email it (told as the person, with nothing else).
    if let Err(e) = state
        .services
        .address_confirmed(&signed_in.person_id, &signed_in.email)
        .await
    {
        tracing::warn!(error = %e, "notifications not told of a confirmed address; they will ask the person to confirm it");
    }
    if signed_in.new {
        tracing::info!("a person signed in for the first time");
    }
    let mut response = Redirect::to(safe_next(&signed_in.next_path)).into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

fn spent(state: &AppState) -> Response {
    let error = GatewayError::Gone(
        "That sign-in link or code has been used, has expired or has been tried too often. Ask for a new one.".into(),
    );
    error_page(state, &error)
}

fn failed(state: &AppState, e: anyhow::Error) -> Response {
    tracing::error!(error = %format!("{e:#}"), "signing in failed");
    error_page(state, &GatewayError::Internal("signing in failed".into()))
}

#[derive(Deserialize)]
pub(crate) struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

pub(crate) async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<SignOutForm>,
) -> Response {
    let Some(axum::Extension(signed)) = signed else {
        return Redirect::to("/").into_response();
    };
    if !forms::token_ok(&headers, &form.csrf, Some(&signed)) {
        return error_page(
            &state,
            &GatewayError::bad("csrf", "the form has expired: please try again"),
        );
    }
    match state
        .sessions
        .end(&signed, over_https(&state, &headers))
        .await
    {
        Ok(clear) => {
            let mut response = Redirect::to("/").into_response();
            response.headers_mut().append(header::SET_COOKIE, clear);
            response
        }
        Err(e) => failed(&state, e.into()),
    }
}

pub(crate) async fn sign_out_everywhere(
    State(state): State<AppState>,
    headers: HeaderMap,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<SignOutForm>,
) -> Response {
    let Some(axum::Extension(signed)) = signed else {
        return Redirect::to("/").into_response();
    };
    if !forms::token_ok(&headers, &form.csrf, Some(&signed)) {
        return error_page(
            &state,
            &GatewayError::bad("csrf", "the form has expired: please try again"),
        );
    }
    match state
        .sessions
        .end_all(&signed.person_id, over_https(&state, &headers))
        .await
    {
        Ok(clear) => {
            let mut response = Redirect::to("/").into_response();
            response.headers_mut().append(header::SET_COOKIE, clear);
            response
        }
        Err(e) => failed(&state, e.into()),
    }
}

#[derive(Serialize)]
struct AccountPage {
    email: Option<String>,
    staff: bool,
    sessions: u64,
}

pub(crate) async fn account_page(
    State(state): State<AppState>,
    signed: Option<axum::Extension<Signed>>,
) -> Response {
    let Some(axum::Extension(signed)) = signed else {
        return Redirect::to("/sign-in?next=/account").into_response();
    };
    let account = match crate::store::account::find(&state.db, &signed.person_id).await {
        Ok(a) => a,
        Err(e) => return failed(&state, e.into()),
    };
    let sessions = crate::store::session::count_of(&state.db, &signed.person_id)
        .await
        .unwrap_or(0);
    let view = AccountPage {
        email: account.and_then(|a| a.email),
        staff: signed.is_staff(),
        sessions,
    };
    let layout = Layout::new(&state, "Your account", "", None);
    html(&state, StatusCode::OK, "account.html", layout, &view)
}

/// The region's public signing keys, for the services to check the tokens
/// the gateway gives them.
pub(crate) async fn jwks(State(state): State<AppState>) -> Response {
    match state.keys.jwks().await {
        Ok(jwks) => (
            [
                (header::CONTENT_TYPE, "application/jwk-set+json"),
                (header::CACHE_CONTROL, "public, max-age=60"),
            ],
            jwks,
        )
            .into_response(),
        Err(e) => failed(&state, e),
    }
}
