use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = selfhelp_platform::migrations::migrations();
        all.extend(selfhelp_platform::migrations::group_view_migrations());
        all.push(Box::new(CreateNotifications));
        all.push(Box::new(ErasedSubjects));
        all.push(Box::new(Audiences));
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
