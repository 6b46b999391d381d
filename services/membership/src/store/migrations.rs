use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = selfhelp_platform::migrations::migrations();
        all.extend(selfhelp_platform::migrations::group_view_migrations());
        all.push(Box::new(CreateMembership));
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
