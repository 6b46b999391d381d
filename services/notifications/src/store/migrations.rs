use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, string, text};

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = selfhelp_platform::migrations::migrations();
        all.extend(selfhelp_group_view::migrations());
        all.push(Box::new(CreateNotifications));
        all.push(Box::new(ErasedSubjects));
        all.push(Box::new(Audiences));
        all.push(Box::new(Channels));
        all.push(Box::new(EmailConfirmation));
        all.push(Box::new(AlertPlaces));
        all
    }
}

struct CreateNotifications;

impl MigrationName for CreateNotifications {
    fn name(&self) -> &str {
        "m0100_notifications_inbox"
    }
}

#[derive(DeriveIden)]
enum Notification {
    Table,
    Id,
    RecipientId,
    Kind,
    Title,
    Body,
    GroupId,
    EventId,
    CreatedAtMs,
    ReadAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for CreateNotifications {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Notification::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(Notification::Id)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(Notification::RecipientId)
                        .string()
                        .not_null(),
                )
                .col(ColumnDef::new(Notification::Kind).string().not_null())
                .col(ColumnDef::new(Notification::Title).string().not_null())
                .col(ColumnDef::new(Notification::Body).text().not_null())
                .col(ColumnDef::new(Notification::GroupId).string().not_null())
                .col(ColumnDef::new(Notification::EventId).string().not_null())
                .col(
                    ColumnDef::new(Notification::CreatedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(Notification::ReadAtMs).big_integer().null())
                .to_owned(),
        )
        .await?;
        // One notification per (event, recipient, kind), whatever redelivery does.
        m.create_index(
            Index::create()
                .name("uq_notification_event_recipient_kind")
                .table(Notification::Table)
                .col(Notification::EventId)
                .col(Notification::RecipientId)
                .col(Notification::Kind)
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_notification_recipient")
                .table(Notification::Table)
                .col(Notification::RecipientId)
                .col(Notification::Id)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }
}

/// People erased on request (under a pseudonym).
struct ErasedSubjects;

impl MigrationName for ErasedSubjects {
    fn name(&self) -> &str {
        "m0101_notifications_erased_subjects"
    }
}

#[derive(DeriveIden)]
enum ErasedSubject {
    Table,
    SubjectKey,
    ErasedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for ErasedSubjects {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ErasedSubject::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(ErasedSubject::SubjectKey)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(ErasedSubject::ErasedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await
    }
}

/// Members and followers of each group, for meeting changes.
struct Audiences;

impl MigrationName for Audiences {
    fn name(&self) -> &str {
        "m0102_notifications_audiences"
    }
}

#[derive(DeriveIden)]
enum Audience {
    Table,
    GroupId,
    PersonId,
    Relation,
    Active,
    Version,
}

#[async_trait::async_trait]
impl MigrationTrait for Audiences {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Audience::Table)
                .if_not_exists()
                .col(ColumnDef::new(Audience::GroupId).string().not_null())
                .col(ColumnDef::new(Audience::PersonId).string().not_null())
                .col(ColumnDef::new(Audience::Relation).string().not_null())
                .col(ColumnDef::new(Audience::Active).boolean().not_null())
                .col(ColumnDef::new(Audience::Version).big_integer().not_null())
                .primary_key(
                    Index::create()
                        .col(Audience::GroupId)
                        .col(Audience::PersonId)
                        .col(Audience::Relation),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_audience_person")
                .table(Audience::Table)
                .col(Audience::PersonId)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }
}

/// Preferences, the delivery log, webhooks, digests, saved alerts and the
/// service's own secrets.
struct Channels;

impl MigrationName for Channels {
    fn name(&self) -> &str {
        "m0103_notifications_channels"
    }
}

#[derive(DeriveIden)]
enum Preference {
    Table,
    PersonId,
    Email,
    Doc,
    UpdatedAtMs,
}

#[derive(DeriveIden)]
enum Delivery {
    Table,
    Id,
    NotificationId,
    IsDigest,
    RecipientId,
    Channel,
    WebhookId,
    Status,
    Attempts,
    NextAttemptAtMs,
    ClaimedUntilMs,
    ClaimedBy,
    LastError,
    DigestId,
    CreatedAtMs,
    UpdatedAtMs,
    SentAtMs,
}

#[derive(DeriveIden)]
enum Webhook {
    Table,
    Id,
    OwnerId,
    Url,
    Secret,
    Kinds,
    Active,
    DisabledReason,
    CreatedAtMs,
}

#[derive(DeriveIden)]
enum Digest {
    Table,
    Id,
    PersonId,
    Period,
    ItemCount,
    CreatedAtMs,
}

#[derive(DeriveIden)]
enum Alert {
    Table,
    Id,
    PersonId,
    Topics,
    Latitude,
    Longitude,
    RadiusKm,
    Label,
    CreatedAtMs,
}

#[derive(DeriveIden)]
enum ServiceSecret {
    Table,
    Name,
    Value,
}

/// `CREATE [UNIQUE] INDEX IF NOT EXISTS name ON table (columns)`.
fn index<const N: usize>(
    name: &str,
    table: impl IntoIden,
    columns: [DynIden; N],
    unique: bool,
) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table).if_not_exists();
    for column in columns {
        index.col(column);
    }
    if unique {
        index.unique();
    }
    index.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Channels {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Preference::Table)
                .if_not_exists()
                .col(string(Preference::PersonId).primary_key())
                .col(string(Preference::Email))
                .col(text(Preference::Doc))
                .col(big_integer(Preference::UpdatedAtMs))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Delivery::Table)
                .if_not_exists()
                .col(string(Delivery::Id).primary_key())
                .col(string(Delivery::NotificationId))
                .col(ColumnDef::new(Delivery::IsDigest).boolean().not_null())
                .col(string(Delivery::RecipientId))
                .col(string(Delivery::Channel))
                .col(string(Delivery::WebhookId))
                .col(string(Delivery::Status))
                .col(ColumnDef::new(Delivery::Attempts).integer().not_null())
                .col(big_integer(Delivery::NextAttemptAtMs))
                .col(big_integer(Delivery::ClaimedUntilMs))
                .col(string(Delivery::ClaimedBy))
                .col(text(Delivery::LastError))
                .col(string(Delivery::DigestId))
                .col(big_integer(Delivery::CreatedAtMs))
                .col(big_integer(Delivery::UpdatedAtMs))
                .col(ColumnDef::new(Delivery::SentAtMs).big_integer().null())
                .to_owned(),
        )
        .await?;
        // One delivery per notification, channel and endpoint, however often the
        // event is redelivered.
        m.create_index(index(
            "uq_delivery_notification_channel_webhook",
            Delivery::Table,
            [
                Delivery::NotificationId.into_iden(),
                Delivery::Channel.into_iden(),
                Delivery::WebhookId.into_iden(),
            ],
            true,
        ))
        .await?;
        m.create_index(index(
            "idx_delivery_due",
            Delivery::Table,
            [
                Delivery::Status.into_iden(),
                Delivery::NextAttemptAtMs.into_iden(),
            ],
            false,
        ))
        .await?;
        m.create_index(index(
            "idx_delivery_digest",
            Delivery::Table,
            [Delivery::DigestId.into_iden()],
            false,
        ))
        .await?;
        m.create_index(index(
            "idx_delivery_recipient",
            Delivery::Table,
            [
                Delivery::RecipientId.into_iden(),
                Delivery::Status.into_iden(),
            ],
            false,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(Webhook::Table)
                .if_not_exists()
                .col(string(Webhook::Id).primary_key())
                .col(string(Webhook::OwnerId))
                .col(text(Webhook::Url))
                .col(string(Webhook::Secret))
                .col(text(Webhook::Kinds))
                .col(ColumnDef::new(Webhook::Active).boolean().not_null())
                .col(text(Webhook::DisabledReason))
                .col(big_integer(Webhook::CreatedAtMs))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "idx_webhook_owner",
            Webhook::Table,
            [Webhook::OwnerId.into_iden()],
            false,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(Digest::Table)
                .if_not_exists()
                .col(string(Digest::Id).primary_key())
                .col(string(Digest::PersonId))
                .col(string(Digest::Period))
                .col(ColumnDef::new(Digest::ItemCount).integer().not_null())
                .col(big_integer(Digest::CreatedAtMs))
                .to_owned(),
        )
        .await?;
        // The guard that makes a digest go out once, however many replicas run.
        m.create_index(index(
            "uq_digest_person_period",
            Digest::Table,
            [Digest::PersonId.into_iden(), Digest::Period.into_iden()],
            true,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(Alert::Table)
                .if_not_exists()
                .col(string(Alert::Id).primary_key())
                .col(string(Alert::PersonId))
                .col(text(Alert::Topics))
                .col(ColumnDef::new(Alert::Latitude).double().not_null())
                .col(ColumnDef::new(Alert::Longitude).double().not_null())
                .col(ColumnDef::new(Alert::RadiusKm).double().not_null())
                .col(string(Alert::Label))
                .col(big_integer(Alert::CreatedAtMs))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "idx_alert_person",
            Alert::Table,
            [Alert::PersonId.into_iden()],
            false,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(ServiceSecret::Table)
                .if_not_exists()
                .col(string(ServiceSecret::Name).primary_key())
                .col(text(ServiceSecret::Value))
                .to_owned(),
        )
        .await
    }
}

/// Email addresses confirmed by a link before anything else goes to them.
struct EmailConfirmation;

impl MigrationName for EmailConfirmation {
    fn name(&self) -> &str {
        "m0104_notifications_email_confirmation"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for EmailConfirmation {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        m.alter_table(
            Table::alter()
                .table(Preference::Table)
                .add_column(
                    ColumnDef::new(Alias::new("email_confirmed_at_ms"))
                        .big_integer()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Delivery::Table)
                .add_column(
                    ColumnDef::new(Alias::new("is_confirmation"))
                        .boolean()
                        .not_null()
                        .default(false),
                )
                .to_owned(),
        )
        .await?;
        // Addresses stored before confirmation existed keep receiving: they
        // were given by their owners' own signed-in sessions, and switching
        // them all off at an upgrade would silence everyone without a word.
        let grandfather = Query::update()
            .table(Preference::Table)
            .value(
                Alias::new("email_confirmed_at_ms"),
                Expr::col(Preference::UpdatedAtMs),
            )
            .and_where(Expr::col(Preference::Email).ne(""))
            .to_owned();
        m.exec_stmt(grandfather).await
    }
}

/// Alerts by postcode, and alerts that take in groups meeting online.
struct AlertPlaces;

impl MigrationName for AlertPlaces {
    fn name(&self) -> &str {
        "m0105_notifications_alert_places"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AlertPlaces {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        m.alter_table(
            Table::alter()
                .table(Alias::new("alert"))
                .add_column(
                    ColumnDef::new(Alias::new("postcode"))
                        .string()
                        .not_null()
                        .default(""),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Alias::new("alert"))
                .add_column(
                    ColumnDef::new(Alias::new("include_online"))
                        .boolean()
                        .not_null()
                        .default(false),
                )
                .to_owned(),
        )
        .await
    }
}
