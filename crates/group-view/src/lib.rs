//! `group_view`: a consumer's read model of listings' groups, fed by the group
//! snapshots in LISTINGS events. Services that need to know groups (membership,
//! notifications) each keep this table in their own database; listings, which
//! owns groups, does not. Kept out of the platform so that the shared code
//! knows no context's data.

use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait};
use selfhelp_proto::events::v1::GroupSnapshot;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "group_view")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub group_id: String,
    pub region: String,
    pub name: String,
    pub status: String,
    pub join_policy: String,
    pub organiser_ids_json: String,
    pub version: i64,
    pub updated_at_ms: i64,
    /// Places for members; 0 means no limit.
    pub capacity: i32,
    /// Member-only joining details (an online meeting link, the exact room).
    pub joining_details: String,
    /// The organisers give the joining details in each new member's welcome.
    pub welcome_with_joining_details: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn organiser_ids(&self) -> Vec<String> {
        serde_json::from_str(&self.organiser_ids_json).unwrap_or_default()
    }
}

pub async fn find<C: ConnectionTrait>(conn: &C, group_id: &str) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(group_id.to_string()).one(conn).await
}

/// The groups with these ids that are known, by id.
pub async fn find_many<C: ConnectionTrait>(
    conn: &C,
    group_ids: &[&str],
) -> Result<std::collections::HashMap<String, Model>, DbErr> {
    let mut found = std::collections::HashMap::with_capacity(group_ids.len());
    for chunk in
        selfhelp_platform::db::statement_chunks(conn.get_database_backend(), group_ids, |id| {
            id.len()
        })
    {
        let rows = Entity::find()
            .filter(Column::GroupId.is_in(chunk.iter().copied()))
            .all(conn)
            .await?;
        found.extend(rows.into_iter().map(|g| (g.group_id.clone(), g)));
    }
    Ok(found)
}

/// Stores `snapshot` unless a newer (or the same) version is already held:
/// events may arrive twice or out of order.
pub async fn apply<C: ConnectionTrait>(
    conn: &C,
    snapshot: &GroupSnapshot,
    now: i64,
) -> Result<bool, DbErr> {
    let row = ActiveModel {
        group_id: Set(snapshot.group_id.clone()),
        region: Set(snapshot.region.clone()),
        name: Set(snapshot.name.clone()),
        status: Set(snapshot.status.clone()),
        join_policy: Set(snapshot.join_policy.clone()),
        organiser_ids_json: Set(
            serde_json::to_string(&snapshot.organiser_ids).expect("strings serialise")
        ),
        version: Set(snapshot.version),
        updated_at_ms: Set(now),
        capacity: Set(snapshot.capacity),
        joining_details: Set(snapshot.joining_details.clone()),
        welcome_with_joining_details: Set(snapshot.welcome_with_joining_details),
    };
    match find(conn, &snapshot.group_id).await? {
        None => {
            Entity::insert(row).exec_without_returning(conn).await?;
            Ok(true)
        }
        Some(held) if held.version < snapshot.version => {
            Entity::update(row).exec(conn).await?;
            Ok(true)
        }
        Some(_) => Ok(false),
    }
}

/// The table's migrations, for the services that keep it.
pub fn migrations() -> Vec<Box<dyn sea_orm_migration::MigrationTrait>> {
    vec![
        Box::new(migration::CreateGroupView),
        Box::new(migration::AddGroupViewCapacity),
        Box::new(migration::AddGroupViewJoiningDetails),
        Box::new(migration::AddGroupViewWelcomeChoice),
    ]
}

mod migration {
    use sea_orm_migration::prelude::*;

    #[derive(DeriveIden)]
    enum GroupView {
        Table,
        GroupId,
        Region,
        Name,
        Status,
        JoinPolicy,
        OrganiserIdsJson,
        Version,
        UpdatedAtMs,
        Capacity,
        JoiningDetails,
        WelcomeWithJoiningDetails,
    }

    pub struct CreateGroupView;

    impl MigrationName for CreateGroupView {
        fn name(&self) -> &str {
            "m0002_platform_group_view"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for CreateGroupView {
        async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
            m.create_table(
                Table::create()
                    .table(GroupView::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(GroupView::GroupId)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(GroupView::Region).string().not_null())
                    .col(ColumnDef::new(GroupView::Name).string().not_null())
                    .col(ColumnDef::new(GroupView::Status).string().not_null())
                    .col(ColumnDef::new(GroupView::JoinPolicy).string().not_null())
                    .col(
                        ColumnDef::new(GroupView::OrganiserIdsJson)
                            .text()
                            .not_null(),
                    )
                    .col(ColumnDef::new(GroupView::Version).big_integer().not_null())
                    .col(
                        ColumnDef::new(GroupView::UpdatedAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
        }
    }

    /// Capacity came with membership's waitlist.
    pub struct AddGroupViewCapacity;

    impl MigrationName for AddGroupViewCapacity {
        fn name(&self) -> &str {
            "m0003_platform_group_view_capacity"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for AddGroupViewCapacity {
        async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
            m.alter_table(
                Table::alter()
                    .table(GroupView::Table)
                    .add_column(
                        ColumnDef::new(GroupView::Capacity)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await
        }
    }

    /// Joining details came with the signed-in web (members see them).
    pub struct AddGroupViewJoiningDetails;

    impl MigrationName for AddGroupViewJoiningDetails {
        fn name(&self) -> &str {
            "m0004_platform_group_view_joining_details"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for AddGroupViewJoiningDetails {
        async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
            m.alter_table(
                Table::alter()
                    .table(GroupView::Table)
                    .add_column(
                        ColumnDef::new(GroupView::JoiningDetails)
                            .text()
                            .not_null()
                            .default(""),
                    )
                    .to_owned(),
            )
            .await
        }
    }

    /// Whether the welcome carries the joining details (the organisers' choice).
    pub struct AddGroupViewWelcomeChoice;

    impl MigrationName for AddGroupViewWelcomeChoice {
        fn name(&self) -> &str {
            "m0005_platform_group_view_welcome_choice"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for AddGroupViewWelcomeChoice {
        async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
            m.alter_table(
                Table::alter()
                    .table(GroupView::Table)
                    .add_column(
                        ColumnDef::new(GroupView::WelcomeWithJoiningDetails)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .to_owned(),
            )
            .await
        }
    }
}
