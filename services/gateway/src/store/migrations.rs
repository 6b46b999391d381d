use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = selfhelp_platform::migrations::migrations();
        all.push(Box::new(SignIn));
        all.push(Box::new(StaffSignIn));
        all
    }
}

struct SignIn;

impl MigrationName for SignIn {
    fn name(&self) -> &str {
        "m0100_gateway_sign_in"
    }
}

#[derive(DeriveIden)]
enum Account {
    Table,
    PersonId,
    Email,
    ExternalSubject,
    CreatedAtMs,
    LastSignInAtMs,
}

#[derive(DeriveIden)]
enum SignInLink {
    Table,
    Id,
    TokenDigest,
    CodeDigest,
    Email,
    NextPath,
    CreatedAtMs,
    ExpiresAtMs,
    UsedAtMs,
    FailedCodes,
}

#[derive(DeriveIden)]
enum Session {
    Table,
    IdDigest,
    PersonId,
    Roles,
    CsrfToken,
    CreatedAtMs,
    LastSeenAtMs,
    ExpiresAtMs,
}

#[derive(DeriveIden)]
enum SigningKey {
    Table,
    Kid,
    PrivatePem,
    PublicJwk,
    CreatedAtMs,
    SignsUntilMs,
    PublishedUntilMs,
}

#[derive(DeriveIden)]
enum CalendarFeed {
    Table,
    PersonId,
    TokenDigest,
    CreatedAtMs,
}

fn key(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name)
        .string()
        .not_null()
        .primary_key()
        .to_owned()
}

fn text(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name).string().not_null().to_owned()
}

fn long_text(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name).text().not_null().to_owned()
}

fn ms(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for SignIn {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Account::Table)
                .if_not_exists()
                .col(key(Account::PersonId))
                .col(ColumnDef::new(Account::Email).string().null())
                .col(ColumnDef::new(Account::ExternalSubject).string().null())
                .col(ms(Account::CreatedAtMs))
                .col(ms(Account::LastSignInAtMs))
                .to_owned(),
        )
        .await?;
        // One account per address and per external subject (NULLs apart: a
        // person signing in by email has no external subject, and staff may
        // have no address).
        for (name, column) in [
            ("uq_account_email", Account::Email),
            ("uq_account_external_subject", Account::ExternalSubject),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table(Account::Table)
                    .col(column)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        }
        m.create_table(
            Table::create()
                .table(SignInLink::Table)
                .if_not_exists()
                .col(key(SignInLink::Id))
                .col(text(SignInLink::TokenDigest))
                .col(text(SignInLink::CodeDigest))
                .col(text(SignInLink::Email))
                .col(long_text(SignInLink::NextPath))
                .col(ms(SignInLink::CreatedAtMs))
                .col(ms(SignInLink::ExpiresAtMs))
                .col(ColumnDef::new(SignInLink::UsedAtMs).big_integer().null())
                .col(
                    ColumnDef::new(SignInLink::FailedCodes)
                        .integer()
                        .not_null()
                        .default(0),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("uq_sign_in_link_token")
                .table(SignInLink::Table)
                .col(SignInLink::TokenDigest)
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_sign_in_link_email_created")
                .table(SignInLink::Table)
                .col(SignInLink::Email)
                .col(SignInLink::CreatedAtMs)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Session::Table)
                .if_not_exists()
                .col(key(Session::IdDigest))
                .col(text(Session::PersonId))
                .col(text(Session::Roles))
                .col(text(Session::CsrfToken))
                .col(ms(Session::CreatedAtMs))
                .col(ms(Session::LastSeenAtMs))
                .col(ms(Session::ExpiresAtMs))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_session_person")
                .table(Session::Table)
                .col(Session::PersonId)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(SigningKey::Table)
                .if_not_exists()
                .col(key(SigningKey::Kid))
                .col(long_text(SigningKey::PrivatePem))
                .col(long_text(SigningKey::PublicJwk))
                .col(ms(SigningKey::CreatedAtMs))
                .col(ms(SigningKey::SignsUntilMs))
                .col(ms(SigningKey::PublishedUntilMs))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(CalendarFeed::Table)
                .if_not_exists()
                .col(key(CalendarFeed::PersonId))
                .col(text(CalendarFeed::TokenDigest))
                .col(ms(CalendarFeed::CreatedAtMs))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("uq_calendar_feed_token")
                .table(CalendarFeed::Table)
                .col(CalendarFeed::TokenDigest)
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await
    }
}

/// Staff signing in through the region's identity provider: what each
/// sign-in begun waits for when the provider sends the person back.
struct StaffSignIn;

impl MigrationName for StaffSignIn {
    fn name(&self) -> &str {
        "m0101_gateway_staff_sign_in"
    }
}

#[derive(DeriveIden)]
enum StaffSignInState {
    #[sea_orm(iden = "staff_sign_in")]
    Table,
    StateDigest,
    PkceVerifier,
    Nonce,
    NextPath,
    ExpiresAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for StaffSignIn {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(StaffSignInState::Table)
                .if_not_exists()
                .col(key(StaffSignInState::StateDigest))
                .col(text(StaffSignInState::PkceVerifier))
                .col(text(StaffSignInState::Nonce))
                .col(long_text(StaffSignInState::NextPath))
                .col(ms(StaffSignInState::ExpiresAtMs))
                .to_owned(),
        )
        .await
    }
}
