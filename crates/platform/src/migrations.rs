//! Tables every service has: the outbox, the inbox and dead letters. Each
//! service's migrator lists [`migrations`] before its own.

use sea_orm_migration::prelude::*;

pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![Box::new(PlatformTables), Box::new(ServiceSecrets)]
}

/// `service_secret` for every service (notifications had it first, with the
/// same shape: for it this creates nothing).
struct ServiceSecrets;

impl MigrationName for ServiceSecrets {
    fn name(&self) -> &str {
        "m0002_platform_service_secret"
    }
}

#[derive(DeriveIden)]
enum ServiceSecret {
    Table,
    Name,
    Value,
}

#[async_trait::async_trait]
impl MigrationTrait for ServiceSecrets {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ServiceSecret::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(ServiceSecret::Name)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(ServiceSecret::Value).text().not_null())
                .to_owned(),
        )
        .await
    }
}

struct PlatformTables;

impl MigrationName for PlatformTables {
    fn name(&self) -> &str {
        "m0001_platform_outbox_inbox_dead_letters"
    }
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Seq,
    EventId,
    Stream,
    Subject,
    CeType,
    CeSource,
    CeSubject,
    CeTime,
    DataSchema,
    Payload,
    Traceparent,
    CreatedAtMs,
    PublishedAtMs,
    LeaseOwner,
    LeaseUntilMs,
    Attempts,
    LastError,
}

#[derive(DeriveIden)]
enum Inbox {
    Table,
    Consumer,
    EventId,
    ProcessedAtMs,
}

#[derive(DeriveIden)]
enum DeadLetter {
    Table,
    Id,
    Consumer,
    EventId,
    Subject,
    HeadersJson,
    Payload,
    Error,
    Deliveries,
    CreatedAtMs,
    ReplayedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for PlatformTables {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Outbox::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(Outbox::Seq)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(Outbox::EventId)
                        .string()
                        .not_null()
                        .unique_key(),
                )
                .col(ColumnDef::new(Outbox::Stream).string().not_null())
                .col(ColumnDef::new(Outbox::Subject).string().not_null())
                .col(ColumnDef::new(Outbox::CeType).string().not_null())
                .col(ColumnDef::new(Outbox::CeSource).string().not_null())
                .col(ColumnDef::new(Outbox::CeSubject).string().not_null())
                .col(ColumnDef::new(Outbox::CeTime).string().not_null())
                .col(ColumnDef::new(Outbox::DataSchema).string().not_null())
                .col(ColumnDef::new(Outbox::Payload).blob().not_null())
                .col(ColumnDef::new(Outbox::Traceparent).string().null())
                .col(ColumnDef::new(Outbox::CreatedAtMs).big_integer().not_null())
                .col(ColumnDef::new(Outbox::PublishedAtMs).big_integer().null())
                .col(ColumnDef::new(Outbox::LeaseOwner).string().null())
                .col(ColumnDef::new(Outbox::LeaseUntilMs).big_integer().null())
                .col(
                    ColumnDef::new(Outbox::Attempts)
                        .integer()
                        .not_null()
                        .default(0),
                )
                .col(ColumnDef::new(Outbox::LastError).text().null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_outbox_pending")
                .table(Outbox::Table)
                .col(Outbox::PublishedAtMs)
                .col(Outbox::Seq)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Inbox::Table)
                .if_not_exists()
                .col(ColumnDef::new(Inbox::Consumer).string().not_null())
                .col(ColumnDef::new(Inbox::EventId).string().not_null())
                .col(
                    ColumnDef::new(Inbox::ProcessedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .primary_key(Index::create().col(Inbox::Consumer).col(Inbox::EventId))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(DeadLetter::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(DeadLetter::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(ColumnDef::new(DeadLetter::Consumer).string().not_null())
                .col(ColumnDef::new(DeadLetter::EventId).string().not_null())
                .col(ColumnDef::new(DeadLetter::Subject).string().not_null())
                .col(ColumnDef::new(DeadLetter::HeadersJson).text().not_null())
                .col(ColumnDef::new(DeadLetter::Payload).blob().not_null())
                .col(ColumnDef::new(DeadLetter::Error).text().not_null())
                .col(
                    ColumnDef::new(DeadLetter::Deliveries)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(DeadLetter::CreatedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(DeadLetter::ReplayedAtMs)
                        .big_integer()
                        .null(),
                )
                .to_owned(),
        )
        .await
    }
}

/// sea-orm entities for the tables above.
pub mod entities {
    pub mod outbox {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "outbox")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub seq: i64,
            pub event_id: String,
            pub stream: String,
            pub subject: String,
            pub ce_type: String,
            pub ce_source: String,
            pub ce_subject: String,
            pub ce_time: String,
            pub data_schema: String,
            pub payload: Vec<u8>,
            pub traceparent: Option<String>,
            pub created_at_ms: i64,
            pub published_at_ms: Option<i64>,
            pub lease_owner: Option<String>,
            pub lease_until_ms: Option<i64>,
            pub attempts: i32,
            pub last_error: Option<String>,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    pub mod inbox {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "inbox")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub consumer: String,
            #[sea_orm(primary_key, auto_increment = false)]
            pub event_id: String,
            pub processed_at_ms: i64,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    pub mod dead_letter {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "dead_letter")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub consumer: String,
            pub event_id: String,
            pub subject: String,
            pub headers_json: String,
            pub payload: Vec<u8>,
            pub error: String,
            pub deliveries: i64,
            pub created_at_ms: i64,
            pub replayed_at_ms: Option<i64>,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }
}
