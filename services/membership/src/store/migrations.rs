use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = selfhelp_platform::migrations::migrations();
        all.extend(selfhelp_group_view::migrations());
        all.push(Box::new(CreateMembership));
        all.push(Box::new(JoiningAndPrivacy));
        all.push(Box::new(Rotas));
        all.push(Box::new(Erasure));
        all.push(Box::new(Announcements));
        all.push(Box::new(OrganiserInvitations));
        all.push(Box::new(SwapRequests));
        all.push(Box::new(Sharing));
        all.push(Box::new(GroupLife));
        all
    }
}

struct CreateMembership;

impl MigrationName for CreateMembership {
    fn name(&self) -> &str {
        "m0100_membership_memberships"
    }
}

#[derive(DeriveIden)]
enum Membership {
    Table,
    Id,
    GroupId,
    PersonId,
    State,
    Role,
    JoinedAtMs,
    UpdatedAtMs,
    Version,
}

#[async_trait::async_trait]
impl MigrationTrait for CreateMembership {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Membership::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(Membership::Id)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(Membership::GroupId).string().not_null())
                .col(ColumnDef::new(Membership::PersonId).string().not_null())
                .col(ColumnDef::new(Membership::State).string().not_null())
                .col(ColumnDef::new(Membership::Role).string().not_null())
                .col(
                    ColumnDef::new(Membership::JoinedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Membership::UpdatedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(Membership::Version).big_integer().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("uq_membership_group_person")
                .table(Membership::Table)
                .col(Membership::GroupId)
                .col(Membership::PersonId)
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_membership_person")
                .table(Membership::Table)
                .col(Membership::PersonId)
                .col(Membership::JoinedAtMs)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }
}

/// Approval, invitations, the waitlist, roles and duties, follows and consent.
struct JoiningAndPrivacy;

impl MigrationName for JoiningAndPrivacy {
    fn name(&self) -> &str {
        "m0101_membership_joining_privacy"
    }
}

#[derive(DeriveIden)]
enum MembershipMore {
    #[sea_orm(iden = "membership")]
    Table,
    DisplayName,
    Hidden,
    DutiesJson,
    Answer,
    WaitlistedAtMs,
    GroupId,
    State,
}

#[derive(DeriveIden)]
enum MembershipGroup {
    Table,
    GroupId,
    MemberListVisibility,
    JoinQuestion,
    Seq,
    UpdatedAtMs,
}

#[derive(DeriveIden)]
enum Invitation {
    Table,
    Id,
    GroupId,
    Code,
    PersonId,
    CreatedBy,
    MaxUses,
    Uses,
    ExpiresAtMs,
    CreatedAtMs,
}

#[derive(DeriveIden)]
enum Consent {
    Table,
    Id,
    MembershipId,
    GroupId,
    PersonId,
    Version,
    Text,
    GivenAtMs,
    WithdrawnAtMs,
}

#[derive(DeriveIden)]
enum Follow {
    Table,
    GroupId,
    PersonId,
    CreatedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for JoiningAndPrivacy {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters a column at a time.
        let columns = [
            ColumnDef::new(MembershipMore::DisplayName)
                .string()
                .not_null()
                .default("")
                .to_owned(),
            ColumnDef::new(MembershipMore::Hidden)
                .boolean()
                .not_null()
                .default(false)
                .to_owned(),
            ColumnDef::new(MembershipMore::DutiesJson)
                .text()
                .not_null()
                .default("[]")
                .to_owned(),
            ColumnDef::new(MembershipMore::Answer)
                .text()
                .not_null()
                .default("")
                .to_owned(),
            ColumnDef::new(MembershipMore::WaitlistedAtMs)
                .big_integer()
                .null()
                .to_owned(),
        ];
        for mut column in columns {
            m.alter_table(
                Table::alter()
                    .table(MembershipMore::Table)
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
        }
        m.create_index(
            Index::create()
                .name("idx_membership_group_state")
                .table(MembershipMore::Table)
                .col(MembershipMore::GroupId)
                .col(MembershipMore::State)
                .if_not_exists()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(MembershipGroup::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(MembershipGroup::GroupId)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(MembershipGroup::MemberListVisibility)
                        .string()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(MembershipGroup::JoinQuestion)
                        .text()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(MembershipGroup::Seq)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(MembershipGroup::UpdatedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Invitation::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(Invitation::Id)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(Invitation::GroupId).string().not_null())
                .col(ColumnDef::new(Invitation::Code).string().null())
                .col(ColumnDef::new(Invitation::PersonId).string().null())
                .col(ColumnDef::new(Invitation::CreatedBy).string().not_null())
                .col(ColumnDef::new(Invitation::MaxUses).integer().not_null())
                .col(ColumnDef::new(Invitation::Uses).integer().not_null())
                .col(
                    ColumnDef::new(Invitation::ExpiresAtMs)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Invitation::CreatedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("uq_invitation_code")
                .table(Invitation::Table)
                .col(Invitation::Code)
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Consent::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(Consent::Id)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(Consent::MembershipId).string().not_null())
                .col(ColumnDef::new(Consent::GroupId).string().not_null())
                .col(ColumnDef::new(Consent::PersonId).string().not_null())
                .col(ColumnDef::new(Consent::Version).string().not_null())
                .col(ColumnDef::new(Consent::Text).text().not_null())
                .col(ColumnDef::new(Consent::GivenAtMs).big_integer().not_null())
                .col(ColumnDef::new(Consent::WithdrawnAtMs).big_integer().null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_consent_person")
                .table(Consent::Table)
                .col(Consent::PersonId)
                .if_not_exists()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Follow::Table)
                .if_not_exists()
                .col(ColumnDef::new(Follow::GroupId).string().not_null())
                .col(ColumnDef::new(Follow::PersonId).string().not_null())
                .col(ColumnDef::new(Follow::CreatedAtMs).big_integer().not_null())
                .primary_key(Index::create().col(Follow::GroupId).col(Follow::PersonId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_follow_person")
                .table(Follow::Table)
                .col(Follow::PersonId)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }
}

/// Meetings (from listings' schedule events) and the rotas that follow them.
struct Rotas;

impl MigrationName for Rotas {
    fn name(&self) -> &str {
        "m0102_membership_rotas"
    }
}

#[derive(DeriveIden)]
enum MeetingPlan {
    Table,
    GroupId,
    Timezone,
    ScheduleJson,
    Version,
}

#[derive(DeriveIden)]
enum MeetingChange {
    Table,
    GroupId,
    MeetingKey,
    Kind,
    ExceptionJson,
    Version,
}

#[derive(DeriveIden)]
enum Rota {
    Table,
    GroupId,
    Duty,
    VolunteersJson,
    StartsAtMs,
    UpdatedAtMs,
}

#[derive(DeriveIden)]
enum RotaChange {
    Table,
    Id,
    GroupId,
    Duty,
    Kind,
    MeetingKey,
    Other,
    CreatedAtMs,
}

#[derive(DeriveIden)]
enum RotaReminder {
    Table,
    GroupId,
    Duty,
    MeetingKey,
    PersonId,
    SentAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Rotas {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(MeetingPlan::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(MeetingPlan::GroupId)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(MeetingPlan::Timezone).string().not_null())
                .col(ColumnDef::new(MeetingPlan::ScheduleJson).text().null())
                .col(
                    ColumnDef::new(MeetingPlan::Version)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(MeetingChange::Table)
                .if_not_exists()
                .col(ColumnDef::new(MeetingChange::GroupId).string().not_null())
                .col(
                    ColumnDef::new(MeetingChange::MeetingKey)
                        .string()
                        .not_null(),
                )
                .col(ColumnDef::new(MeetingChange::Kind).string().not_null())
                .col(
                    ColumnDef::new(MeetingChange::ExceptionJson)
                        .text()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(MeetingChange::Version)
                        .big_integer()
                        .not_null(),
                )
                .primary_key(
                    Index::create()
                        .col(MeetingChange::GroupId)
                        .col(MeetingChange::MeetingKey),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Rota::Table)
                .if_not_exists()
                .col(ColumnDef::new(Rota::GroupId).string().not_null())
                .col(ColumnDef::new(Rota::Duty).string().not_null())
                .col(ColumnDef::new(Rota::VolunteersJson).text().not_null())
                .col(ColumnDef::new(Rota::StartsAtMs).big_integer().not_null())
                .col(ColumnDef::new(Rota::UpdatedAtMs).big_integer().not_null())
                .primary_key(Index::create().col(Rota::GroupId).col(Rota::Duty))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(RotaChange::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(RotaChange::Id)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(RotaChange::GroupId).string().not_null())
                .col(ColumnDef::new(RotaChange::Duty).string().not_null())
                .col(ColumnDef::new(RotaChange::Kind).string().not_null())
                .col(ColumnDef::new(RotaChange::MeetingKey).string().not_null())
                .col(ColumnDef::new(RotaChange::Other).string().not_null())
                .col(
                    ColumnDef::new(RotaChange::CreatedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_rota_change_rota")
                .table(RotaChange::Table)
                .col(RotaChange::GroupId)
                .col(RotaChange::Duty)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(RotaReminder::Table)
                .if_not_exists()
                .col(ColumnDef::new(RotaReminder::GroupId).string().not_null())
                .col(ColumnDef::new(RotaReminder::Duty).string().not_null())
                .col(ColumnDef::new(RotaReminder::MeetingKey).string().not_null())
                .col(ColumnDef::new(RotaReminder::PersonId).string().not_null())
                .col(
                    ColumnDef::new(RotaReminder::SentAtMs)
                        .big_integer()
                        .not_null(),
                )
                .primary_key(
                    Index::create()
                        .col(RotaReminder::GroupId)
                        .col(RotaReminder::Duty)
                        .col(RotaReminder::MeetingKey)
                        .col(RotaReminder::PersonId),
                )
                .to_owned(),
        )
        .await
    }
}

/// Erasure requests and the services' confirmations.
struct Erasure;

impl MigrationName for Erasure {
    fn name(&self) -> &str {
        "m0103_membership_erasure"
    }
}

#[derive(DeriveIden)]
enum ErasureRequest {
    Table,
    Id,
    SubjectKey,
    RequestedAtMs,
    DueAtMs,
    CompletedAtMs,
}

#[derive(DeriveIden)]
enum ErasureConfirmation {
    Table,
    RequestId,
    Service,
    ConfirmedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Erasure {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ErasureRequest::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(ErasureRequest::Id)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(ErasureRequest::SubjectKey)
                        .string()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ErasureRequest::RequestedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ErasureRequest::DueAtMs)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ErasureRequest::CompletedAtMs)
                        .big_integer()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_erasure_request_subject")
                .table(ErasureRequest::Table)
                .col(ErasureRequest::SubjectKey)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ErasureConfirmation::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(ErasureConfirmation::RequestId)
                        .string()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ErasureConfirmation::Service)
                        .string()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ErasureConfirmation::ConfirmedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .primary_key(
                    Index::create()
                        .col(ErasureConfirmation::RequestId)
                        .col(ErasureConfirmation::Service),
                )
                .to_owned(),
        )
        .await
    }
}

/// When each group's messages to its members were sent (the daily limit).
struct Announcements;

impl MigrationName for Announcements {
    fn name(&self) -> &str {
        "m0104_membership_announcements"
    }
}

#[derive(DeriveIden)]
enum Announcement {
    Table,
    Id,
    GroupId,
    SentAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Announcements {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Announcement::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(Announcement::Id)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(Announcement::GroupId).string().not_null())
                .col(
                    ColumnDef::new(Announcement::SentAtMs)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_announcement_group_sent")
                .table(Announcement::Table)
                .col(Announcement::GroupId)
                .col(Announcement::SentAtMs)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }
}

struct OrganiserInvitations;

impl MigrationName for OrganiserInvitations {
    fn name(&self) -> &str {
        "m0105_membership_organiser_invitations"
    }
}

#[derive(DeriveIden)]
enum InvitationRole {
    Role,
}

/// What an invitation makes of whoever uses it: `MEMBER`, or `ORGANISER` (an
/// operator's invitation to take on a group nobody organises).
#[async_trait::async_trait]
impl MigrationTrait for OrganiserInvitations {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Invitation::Table)
                .add_column(
                    ColumnDef::new(InvitationRole::Role)
                        .string()
                        .not_null()
                        .default("MEMBER"),
                )
                .to_owned(),
        )
        .await
    }
}

/// Swaps one person on duty asked of another, until answered.
struct SwapRequests;

impl MigrationName for SwapRequests {
    fn name(&self) -> &str {
        "m0106_membership_swap_requests"
    }
}

#[derive(DeriveIden)]
enum SwapRequest {
    Table,
    Id,
    GroupId,
    Duty,
    MeetingKey,
    OtherMeetingKey,
    AskedBy,
    AskedOf,
    CreatedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for SwapRequests {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(SwapRequest::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(SwapRequest::Id)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(SwapRequest::GroupId).string().not_null())
                .col(ColumnDef::new(SwapRequest::Duty).string().not_null())
                .col(ColumnDef::new(SwapRequest::MeetingKey).string().not_null())
                .col(
                    ColumnDef::new(SwapRequest::OtherMeetingKey)
                        .string()
                        .not_null(),
                )
                .col(ColumnDef::new(SwapRequest::AskedBy).string().not_null())
                .col(ColumnDef::new(SwapRequest::AskedOf).string().not_null())
                .col(
                    ColumnDef::new(SwapRequest::CreatedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        // One open ask per pair of turns: asking again replaces it.
        m.create_index(
            Index::create()
                .name("idx_swap_request_turns")
                .table(SwapRequest::Table)
                .col(SwapRequest::GroupId)
                .col(SwapRequest::Duty)
                .col(SwapRequest::MeetingKey)
                .col(SwapRequest::OtherMeetingKey)
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await
    }
}

/// Many hands: who held each duty at each meeting that took place, and what
/// members are willing to do.
struct Sharing;

impl MigrationName for Sharing {
    fn name(&self) -> &str {
        "m0107_membership_sharing"
    }
}

#[derive(DeriveIden)]
enum DutyRecord {
    Table,
    GroupId,
    MeetingKey,
    Duty,
    PersonId,
    StartsAtMs,
    Corrected,
    RecordedAtMs,
}

#[derive(DeriveIden)]
enum MemberSharing {
    Table,
    GroupId,
    PersonId,
    WillingJson,
    Skills,
    Counted,
    UpdatedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Sharing {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(DutyRecord::Table)
                .if_not_exists()
                .col(ColumnDef::new(DutyRecord::GroupId).string().not_null())
                .col(ColumnDef::new(DutyRecord::MeetingKey).string().not_null())
                .col(ColumnDef::new(DutyRecord::Duty).string().not_null())
                .col(ColumnDef::new(DutyRecord::PersonId).string().not_null())
                .col(
                    ColumnDef::new(DutyRecord::StartsAtMs)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(DutyRecord::Corrected)
                        .boolean()
                        .not_null()
                        .default(false),
                )
                .col(
                    ColumnDef::new(DutyRecord::RecordedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .primary_key(
                    Index::create()
                        .col(DutyRecord::GroupId)
                        .col(DutyRecord::MeetingKey)
                        .col(DutyRecord::Duty),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_duty_record_group_start")
                .table(DutyRecord::Table)
                .col(DutyRecord::GroupId)
                .col(DutyRecord::StartsAtMs)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_duty_record_person")
                .table(DutyRecord::Table)
                .col(DutyRecord::PersonId)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(MemberSharing::Table)
                .if_not_exists()
                .col(ColumnDef::new(MemberSharing::GroupId).string().not_null())
                .col(ColumnDef::new(MemberSharing::PersonId).string().not_null())
                .col(ColumnDef::new(MemberSharing::WillingJson).text().not_null())
                .col(ColumnDef::new(MemberSharing::Skills).text().not_null())
                .col(
                    ColumnDef::new(MemberSharing::Counted)
                        .boolean()
                        .not_null()
                        .default(true),
                )
                .col(
                    ColumnDef::new(MemberSharing::UpdatedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .primary_key(
                    Index::create()
                        .col(MemberSharing::GroupId)
                        .col(MemberSharing::PersonId),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_member_sharing_person")
                .table(MemberSharing::Table)
                .col(MemberSharing::PersonId)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }
}

/// The group's own life: practice settings (terms, the agenda's cut-off,
/// attendance), the open forum (agenda items, notes, who came), shared
/// knowledge, sub-committees, and the watch on long-held roles.
struct GroupLife;

impl MigrationName for GroupLife {
    fn name(&self) -> &str {
        "m0108_membership_group_life"
    }
}

#[derive(DeriveIden)]
enum GroupPractice {
    #[sea_orm(iden = "membership_group")]
    Table,
    OrganiserTermMonths,
    ChairTermMonths,
    AgendaCutoffHours,
    Attendance,
}

#[derive(DeriveIden)]
enum AgendaItem {
    Table,
    Id,
    GroupId,
    MeetingKey,
    AuthorId,
    Text,
    CreatedAtMs,
}

#[derive(DeriveIden)]
enum MeetingNotes {
    Table,
    GroupId,
    MeetingKey,
    AuthorId,
    Text,
    WrittenAtMs,
}

#[derive(DeriveIden)]
enum Attendance {
    Table,
    GroupId,
    MeetingKey,
    PersonId,
    StartsAtMs,
    MarkedAtMs,
}

#[derive(DeriveIden)]
enum KnowledgeItem {
    Table,
    Id,
    GroupId,
    AuthorId,
    Title,
    Url,
    Text,
    CreatedAtMs,
}

#[derive(DeriveIden)]
enum Committee {
    Table,
    Id,
    GroupId,
    Name,
    LeadId,
    DutiesJson,
    CreatedAtMs,
}

#[derive(DeriveIden)]
enum CommitteeMember {
    Table,
    CommitteeId,
    PersonId,
    GroupId,
}

#[derive(DeriveIden)]
enum RoleWatch {
    Table,
    GroupId,
    Kind,
    PersonId,
    SinceMs,
    ToldAtMs,
}

/// A text column that is not null.
fn text_col<T: Iden + 'static>(name: T) -> ColumnDef {
    ColumnDef::new(name).text().not_null().to_owned()
}

/// A string (id) column that is not null.
fn id_col<T: Iden + 'static>(name: T) -> ColumnDef {
    ColumnDef::new(name).string().not_null().to_owned()
}

/// A millisecond timestamp column that is not null.
fn ms_col<T: Iden + 'static>(name: T) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().to_owned()
}

async fn index(
    m: &SchemaManager<'_>,
    name: &str,
    table: impl IntoTableRef,
    cols: Vec<DynIden>,
) -> Result<(), DbErr> {
    let mut i = Index::create();
    i.name(name).table(table).if_not_exists();
    for c in cols {
        i.col(c);
    }
    m.create_index(i.to_owned()).await
}

#[async_trait::async_trait]
impl MigrationTrait for GroupLife {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column a statement.
        let columns = [
            ColumnDef::new(GroupPractice::OrganiserTermMonths)
                .integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(GroupPractice::ChairTermMonths)
                .integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(GroupPractice::AgendaCutoffHours)
                .integer()
                .not_null()
                .default(24)
                .to_owned(),
            ColumnDef::new(GroupPractice::Attendance)
                .boolean()
                .not_null()
                .default(false)
                .to_owned(),
        ];
        for mut column in columns {
            m.alter_table(
                Table::alter()
                    .table(GroupPractice::Table)
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
        }
        m.create_table(
            Table::create()
                .table(AgendaItem::Table)
                .if_not_exists()
                .col(id_col(AgendaItem::Id).primary_key())
                .col(id_col(AgendaItem::GroupId))
                .col(id_col(AgendaItem::MeetingKey))
                .col(id_col(AgendaItem::AuthorId))
                .col(text_col(AgendaItem::Text))
                .col(ms_col(AgendaItem::CreatedAtMs))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "idx_agenda_item_meeting",
            AgendaItem::Table,
            vec![
                AgendaItem::GroupId.into_iden(),
                AgendaItem::MeetingKey.into_iden(),
            ],
        )
        .await?;
        index(
            m,
            "idx_agenda_item_author",
            AgendaItem::Table,
            vec![AgendaItem::AuthorId.into_iden()],
        )
        .await?;
        m.create_table(
            Table::create()
                .table(MeetingNotes::Table)
                .if_not_exists()
                .col(id_col(MeetingNotes::GroupId))
                .col(id_col(MeetingNotes::MeetingKey))
                .col(id_col(MeetingNotes::AuthorId))
                .col(text_col(MeetingNotes::Text))
                .col(ms_col(MeetingNotes::WrittenAtMs))
                .primary_key(
                    Index::create()
                        .col(MeetingNotes::GroupId)
                        .col(MeetingNotes::MeetingKey),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "idx_meeting_notes_author",
            MeetingNotes::Table,
            vec![MeetingNotes::AuthorId.into_iden()],
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Attendance::Table)
                .if_not_exists()
                .col(id_col(Attendance::GroupId))
                .col(id_col(Attendance::MeetingKey))
                .col(id_col(Attendance::PersonId))
                .col(ms_col(Attendance::StartsAtMs))
                .col(ms_col(Attendance::MarkedAtMs))
                .primary_key(
                    Index::create()
                        .col(Attendance::GroupId)
                        .col(Attendance::MeetingKey)
                        .col(Attendance::PersonId),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "idx_attendance_person",
            Attendance::Table,
            vec![Attendance::PersonId.into_iden()],
        )
        .await?;
        m.create_table(
            Table::create()
                .table(KnowledgeItem::Table)
                .if_not_exists()
                .col(id_col(KnowledgeItem::Id).primary_key())
                .col(id_col(KnowledgeItem::GroupId))
                .col(id_col(KnowledgeItem::AuthorId))
                .col(text_col(KnowledgeItem::Title))
                .col(text_col(KnowledgeItem::Url))
                .col(text_col(KnowledgeItem::Text))
                .col(ms_col(KnowledgeItem::CreatedAtMs))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "idx_knowledge_item_group",
            KnowledgeItem::Table,
            vec![KnowledgeItem::GroupId.into_iden()],
        )
        .await?;
        index(
            m,
            "idx_knowledge_item_author",
            KnowledgeItem::Table,
            vec![KnowledgeItem::AuthorId.into_iden()],
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Committee::Table)
                .if_not_exists()
                .col(id_col(Committee::Id).primary_key())
                .col(id_col(Committee::GroupId))
                .col(id_col(Committee::Name))
                .col(id_col(Committee::LeadId))
                .col(text_col(Committee::DutiesJson))
                .col(ms_col(Committee::CreatedAtMs))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_committee_name")
                .table(Committee::Table)
                .col(Committee::GroupId)
                .col(Committee::Name)
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(CommitteeMember::Table)
                .if_not_exists()
                .col(id_col(CommitteeMember::CommitteeId))
                .col(id_col(CommitteeMember::PersonId))
                .col(id_col(CommitteeMember::GroupId))
                .primary_key(
                    Index::create()
                        .col(CommitteeMember::CommitteeId)
                        .col(CommitteeMember::PersonId),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "idx_committee_member_person",
            CommitteeMember::Table,
            vec![CommitteeMember::PersonId.into_iden()],
        )
        .await?;
        m.create_table(
            Table::create()
                .table(RoleWatch::Table)
                .if_not_exists()
                .col(id_col(RoleWatch::GroupId))
                .col(id_col(RoleWatch::Kind))
                .col(id_col(RoleWatch::PersonId))
                .col(ms_col(RoleWatch::SinceMs))
                .col(ms_col(RoleWatch::ToldAtMs))
                .primary_key(
                    Index::create()
                        .col(RoleWatch::GroupId)
                        .col(RoleWatch::Kind)
                        .col(RoleWatch::PersonId),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "idx_role_watch_person",
            RoleWatch::Table,
            vec![RoleWatch::PersonId.into_iden()],
        )
        .await
    }
}
