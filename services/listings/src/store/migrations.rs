use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = selfhelp_platform::migrations::migrations();
        all.push(Box::new(CreateGroups));
        all.push(Box::new(CreateTopics));
        all.push(Box::new(AddSchedules));
        all.push(Box::new(AddHistoryAndFreshness));
        all.push(Box::new(AddCardDetails));
        all.push(Box::new(CreateOrganiserRoles));
        all.push(Box::new(CreatePendingEdits));
        all.push(Box::new(IndexPublishedById));
        all.push(Box::new(CreateStaffReports));
        all
    }
}

struct CreateGroups;

impl MigrationName for CreateGroups {
    fn name(&self) -> &str {
        "m0100_listings_groups"
    }
}

#[derive(DeriveIden)]
enum ListingGroup {
    Table,
    Id,
    Region,
    Name,
    Summary,
    Description,
    TopicsJson,
    Format,
    JoinPolicy,
    VenuesJson,
    Status,
    OrganiserIdsJson,
    CreatedBy,
    ReviewNote,
    Version,
    CreatedAtMs,
    UpdatedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for CreateGroups {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ListingGroup::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(ListingGroup::Id)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(ListingGroup::Region).string().not_null())
                .col(ColumnDef::new(ListingGroup::Name).string().not_null())
                .col(ColumnDef::new(ListingGroup::Summary).text().not_null())
                .col(ColumnDef::new(ListingGroup::Description).text().not_null())
                .col(ColumnDef::new(ListingGroup::TopicsJson).text().not_null())
                .col(ColumnDef::new(ListingGroup::Format).string().not_null())
                .col(ColumnDef::new(ListingGroup::JoinPolicy).string().not_null())
                .col(ColumnDef::new(ListingGroup::VenuesJson).text().not_null())
                .col(ColumnDef::new(ListingGroup::Status).string().not_null())
                .col(
                    ColumnDef::new(ListingGroup::OrganiserIdsJson)
                        .text()
                        .not_null(),
                )
                .col(ColumnDef::new(ListingGroup::CreatedBy).string().not_null())
                .col(ColumnDef::new(ListingGroup::ReviewNote).text().null())
                .col(
                    ColumnDef::new(ListingGroup::Version)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ListingGroup::CreatedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ListingGroup::UpdatedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_listing_group_region_status_name")
                .table(ListingGroup::Table)
                .col(ListingGroup::Region)
                .col(ListingGroup::Status)
                .col(ListingGroup::Name)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }
}

struct CreateTopics;

impl MigrationName for CreateTopics {
    fn name(&self) -> &str {
        "m0101_listings_topics"
    }
}

#[derive(DeriveIden)]
enum Topic {
    Table,
    Id,
    Region,
    Code,
    Name,
    Description,
    ParentId,
    RetiredAtMs,
    ReplacedById,
    CreatedAtMs,
    UpdatedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for CreateTopics {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Topic::Table)
                .if_not_exists()
                .col(ColumnDef::new(Topic::Id).string().not_null().primary_key())
                .col(ColumnDef::new(Topic::Region).string().not_null())
                .col(ColumnDef::new(Topic::Code).string().not_null())
                .col(ColumnDef::new(Topic::Name).string().not_null())
                .col(ColumnDef::new(Topic::Description).text().not_null())
                .col(ColumnDef::new(Topic::ParentId).string().null())
                .col(ColumnDef::new(Topic::RetiredAtMs).big_integer().null())
                .col(ColumnDef::new(Topic::ReplacedById).string().null())
                .col(ColumnDef::new(Topic::CreatedAtMs).big_integer().not_null())
                .col(ColumnDef::new(Topic::UpdatedAtMs).big_integer().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("uq_topic_region_code")
                .table(Topic::Table)
                .col(Topic::Region)
                .col(Topic::Code)
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await
    }
}

struct AddSchedules;

impl MigrationName for AddSchedules {
    fn name(&self) -> &str {
        "m0102_listings_schedules"
    }
}

#[derive(DeriveIden)]
enum ScheduleException {
    Table,
    Id,
    GroupId,
    Kind,
    Date,
    NewDate,
    StartTime,
    EndTime,
    VenueIndex,
    Note,
    CreatedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for AddSchedules {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(ListingGroup::Table)
                .add_column(ColumnDef::new(Alias::new("schedule_json")).text().null())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ScheduleException::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(ScheduleException::Id)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(ScheduleException::GroupId)
                        .string()
                        .not_null(),
                )
                .col(ColumnDef::new(ScheduleException::Kind).string().not_null())
                .col(ColumnDef::new(ScheduleException::Date).string().not_null())
                .col(ColumnDef::new(ScheduleException::NewDate).string().null())
                .col(ColumnDef::new(ScheduleException::StartTime).string().null())
                .col(ColumnDef::new(ScheduleException::EndTime).string().null())
                .col(
                    ColumnDef::new(ScheduleException::VenueIndex)
                        .integer()
                        .null(),
                )
                .col(ColumnDef::new(ScheduleException::Note).text().not_null())
                .col(
                    ColumnDef::new(ScheduleException::CreatedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_schedule_exception_group")
                .table(ScheduleException::Table)
                .col(ScheduleException::GroupId)
                .col(ScheduleException::Date)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }
}

struct AddHistoryAndFreshness;

impl MigrationName for AddHistoryAndFreshness {
    fn name(&self) -> &str {
        "m0103_listings_history_and_freshness"
    }
}

#[derive(DeriveIden)]
enum GroupChange {
    Table,
    Id,
    GroupId,
    Field,
    OldValue,
    NewValue,
    ChangedBy,
    ChangedAtMs,
    Version,
}

#[async_trait::async_trait]
impl MigrationTrait for AddHistoryAndFreshness {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for column in [
            ColumnDef::new(Alias::new("assured_at_ms"))
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(Alias::new("assured_by"))
                .string()
                .null()
                .to_owned(),
            ColumnDef::new(Alias::new("review_due_for_ms"))
                .big_integer()
                .null()
                .to_owned(),
        ] {
            let mut column = column;
            m.alter_table(
                Table::alter()
                    .table(ListingGroup::Table)
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
        }
        m.create_table(
            Table::create()
                .table(GroupChange::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(GroupChange::Id)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(GroupChange::GroupId).string().not_null())
                .col(ColumnDef::new(GroupChange::Field).string().not_null())
                .col(ColumnDef::new(GroupChange::OldValue).text().not_null())
                .col(ColumnDef::new(GroupChange::NewValue).text().not_null())
                .col(ColumnDef::new(GroupChange::ChangedBy).string().not_null())
                .col(
                    ColumnDef::new(GroupChange::ChangedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(GroupChange::Version)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_group_change_group")
                .table(GroupChange::Table)
                .col(GroupChange::GroupId)
                .col(GroupChange::Id)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }
}

struct AddCardDetails;

impl MigrationName for AddCardDetails {
    fn name(&self) -> &str {
        "m0104_listings_card_details"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddCardDetails {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            ColumnDef::new(Alias::new("details_json"))
                .text()
                .not_null()
                .default("{}")
                .to_owned(),
            ColumnDef::new(Alias::new("joining_details"))
                .text()
                .null()
                .to_owned(),
        ] {
            let mut column = column;
            m.alter_table(
                Table::alter()
                    .table(ListingGroup::Table)
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}

struct CreateOrganiserRoles;

impl MigrationName for CreateOrganiserRoles {
    fn name(&self) -> &str {
        "m0105_listings_organiser_roles"
    }
}

#[derive(DeriveIden)]
enum OrganiserRole {
    Table,
    GroupId,
    PersonId,
    Role,
    Version,
}

#[async_trait::async_trait]
impl MigrationTrait for CreateOrganiserRoles {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(OrganiserRole::Table)
                .if_not_exists()
                .col(ColumnDef::new(OrganiserRole::GroupId).string().not_null())
                .col(ColumnDef::new(OrganiserRole::PersonId).string().not_null())
                .col(ColumnDef::new(OrganiserRole::Role).string().not_null())
                .col(
                    ColumnDef::new(OrganiserRole::Version)
                        .big_integer()
                        .not_null(),
                )
                .primary_key(
                    Index::create()
                        .col(OrganiserRole::GroupId)
                        .col(OrganiserRole::PersonId),
                )
                .to_owned(),
        )
        .await
    }
}

struct CreatePendingEdits;

impl MigrationName for CreatePendingEdits {
    fn name(&self) -> &str {
        "m0106_listings_pending_edits"
    }
}

#[derive(DeriveIden)]
enum PendingEdit {
    Table,
    GroupId,
    Request,
    ChangesJson,
    EditedBy,
    EditedAtMs,
    BaseVersion,
}

#[async_trait::async_trait]
impl MigrationTrait for CreatePendingEdits {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(PendingEdit::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(PendingEdit::GroupId)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(PendingEdit::Request).blob().not_null())
                .col(ColumnDef::new(PendingEdit::ChangesJson).text().not_null())
                .col(ColumnDef::new(PendingEdit::EditedBy).string().not_null())
                .col(
                    ColumnDef::new(PendingEdit::EditedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(PendingEdit::BaseVersion)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await
    }
}

struct IndexPublishedById;

impl MigrationName for IndexPublishedById {
    fn name(&self) -> &str {
        "m0107_listings_published_by_id"
    }
}

/// Reading a region's published groups in id order (the search index's build at
/// start-up, Open Referral pages) without sorting every group on each page:
/// SQLite sorted the whole table once per page, most of a start-up.
#[async_trait::async_trait]
impl MigrationTrait for IndexPublishedById {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .name("idx_listing_group_region_status_id")
                .table(ListingGroup::Table)
                .col(ListingGroup::Region)
                .col(ListingGroup::Status)
                .col(ListingGroup::Id)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }
}

struct CreateStaffReports;

impl MigrationName for CreateStaffReports {
    fn name(&self) -> &str {
        "m0108_listings_staff_reports"
    }
}

#[derive(DeriveIden)]
enum StaffReport {
    Table,
    Id,
    Region,
    GroupId,
    SuggestedName,
    Message,
    ReplyTo,
    ReceivedAtMs,
    ClosedAtMs,
    ClosedBy,
    ClosingNote,
}

#[async_trait::async_trait]
impl MigrationTrait for CreateStaffReports {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(StaffReport::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(StaffReport::Id)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(StaffReport::Region).string().not_null())
                .col(ColumnDef::new(StaffReport::GroupId).string().not_null())
                .col(ColumnDef::new(StaffReport::SuggestedName).text().not_null())
                .col(ColumnDef::new(StaffReport::Message).text().not_null())
                .col(ColumnDef::new(StaffReport::ReplyTo).text().not_null())
                .col(
                    ColumnDef::new(StaffReport::ReceivedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(StaffReport::ClosedAtMs).big_integer().null())
                .col(ColumnDef::new(StaffReport::ClosedBy).string().not_null())
                .col(ColumnDef::new(StaffReport::ClosingNote).text().not_null())
                .to_owned(),
        )
        .await?;
        // The open reports of a region in order: the staff page's one query.
        m.create_index(
            Index::create()
                .name("idx_staff_report_region_closed_id")
                .table(StaffReport::Table)
                .col(StaffReport::Region)
                .col(StaffReport::ClosedAtMs)
                .col(StaffReport::Id)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }
}
